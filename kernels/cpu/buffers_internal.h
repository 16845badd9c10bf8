// Aligned arrays and per-thread scratch for the optimized kernels.
// Include inside a per-ISA namespace (see simd_internal.h) after <cstdlib>, <cstring>, <new> and
// core/memory.h (large blocks come from gpen::aligned_alloc_bytes: huge pages, fast first touch).

// 64-byte aligned, uninitialised heap array (packed weights, per-thread scratch).
template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t n) { resize(n); }
  ~AlignedArray() { ::gpen::aligned_free(p_); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  AlignedArray(AlignedArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  AlignedArray& operator=(AlignedArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }

  // Discards the contents when it has to grow.
  void resize(size_t n) {
    if (n <= n_) return;
    ::gpen::aligned_free(p_);
    p_ = nullptr;
    p_ = static_cast<T*>(::gpen::aligned_alloc_bytes(n * sizeof(T)));
    n_ = n;
  }
  void zero() {
    if (p_) std::memset(static_cast<void*>(p_), 0, n_ * sizeof(T));
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Per-thread scratch that grows to the largest request and is then reused: big run-time buffers
// (packed inputs, Winograd tiles) must not be allocated, page-faulted and freed on every call.
// `slot` separates buffers that are live at the same time on one thread.
template <class T>
inline T* thread_scratch(int slot, size_t n) {
  thread_local AlignedArray<unsigned char> bufs[5];
  bufs[slot].resize(n * sizeof(T));
  return reinterpret_cast<T*>(bufs[slot].data());
}

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
inline int64_t div_up(int64_t v, int64_t m) { return (v + m - 1) / m; }

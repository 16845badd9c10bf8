// The CUDA emulator's scheduler (see cuda_emu.h): one fiber per CUDA thread of a block, run
// round-robin on the calling OS thread; barriers are waits the scheduler releases.
#include "kernels/cuda/emu/cuda_emu.h"

#include "kernels/cuda/emu/runtime_emu.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

// AddressSanitizer must be told when the stack changes (fiber switches), or it reports the
// fibers' frames as overflows of the scheduler's stack.
#if defined(__SANITIZE_ADDRESS__)
#define GPEN_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPEN_EMU_ASAN 1
#endif
#endif
#ifdef GPEN_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace gpen::cuda::emu {

thread_local Coordinates coords;

namespace {

constexpr size_t kStackBytes = 256 * 1024;  // kernels' frames are small; ASan's redzones are not
constexpr size_t kGuardBytes = 4096;        // an inaccessible page below each stack: overflow faults
constexpr size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute, as our launches
constexpr unsigned kWarp = 32;

enum class Wait { Runnable, Block, Warp, Done };

struct Stack {
  char* base = nullptr;
  Stack() {
    void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<char*>(p);
    mprotect(base, kGuardBytes, PROT_NONE);
  }
  ~Stack() { munmap(base, kStackBytes + kGuardBytes); }
  Stack(const Stack&) = delete;
  char* usable() const { return base + kGuardBytes; }
};

// A fiber runs thread t of every block of every launch on its OS thread, one after another: it
// is entered once through makecontext, and from then on every switch is a _setjmp/_longjmp (no
// system call, unlike swapcontext, which saves the signal mask: a launch switches twice per
// CUDA thread at least).
struct Fiber {
  Stack stack;
  ucontext_t start;
  jmp_buf resume;
  bool started = false;
  void* asan_fake_stack = nullptr;
  Coordinates coords;
  Wait wait = Wait::Done;
};

// Per OS thread: its fibers, the scheduler's jump buffer and the launch running now.
struct Scheduler {
  std::vector<std::unique_ptr<Fiber>> fibers;
  jmp_buf back;
  const void* stack_bottom = nullptr;  // ASan: this OS thread's own stack, to switch back to
  size_t stack_size = 0;
  bool active = false;
  const std::function<void()>* body = nullptr;
  size_t threads = 0;  // fibers in use: the block's threads
  size_t current = 0;
  std::vector<uint64_t> lanes;  // one published value per thread (shuffles)
  std::vector<unsigned char> dynamic_shared;
  uint64_t block_serial = 0;                   // counts the blocks run on this OS thread
  std::vector<std::pair<void*, uint64_t>> shared_filled;  // GPEN_SHARED arrays: the block that last filled each
};
thread_local std::unique_ptr<Scheduler> scheduler;

Order order_from_environment() {
  const char* e = std::getenv("GPEN_CUDA_EMU_ORDER");
  return e && std::strcmp(e, "reverse") == 0 ? Order::Reverse : Order::Forward;
}
thread_local Order run_order = order_from_environment();

void start_switch(void** fake_stack, const void* bottom, size_t size) {
#ifdef GPEN_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
void finish_switch(void* fake_stack, const void** old_bottom, size_t* old_size) {
#ifdef GPEN_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, old_bottom, old_size);
#else
  (void)fake_stack, (void)old_bottom, (void)old_size;
#endif
}

// The running fiber gives the OS thread back to the scheduler; returns when resumed.
void to_scheduler(Fiber& f) {
  Scheduler& s = *scheduler;
  start_switch(&f.asan_fake_stack, s.stack_bottom, s.stack_size);
  if (!_setjmp(f.resume)) _longjmp(s.back, 1);
  finish_switch(f.asan_fake_stack, &s.stack_bottom, &s.stack_size);
}

void fiber_main() {
  Scheduler& s = *scheduler;
  finish_switch(nullptr, &s.stack_bottom, &s.stack_size);
  for (;;) {  // one CUDA thread per turn
    (*s.body)();
    Fiber& f = *s.fibers[s.current];
    f.wait = Wait::Done;
    to_scheduler(f);
  }
}

// The running fiber waits (w) and the scheduler runs the others.
void yield(Wait w) {
  Scheduler& s = *scheduler;
  Fiber& f = *s.fibers[s.current];
  f.wait = w;
  to_scheduler(f);
}

// getcontext returns twice: kept out of the callers' frames.
__attribute__((noinline)) void make_entry(Fiber& f) {
  getcontext(&f.start);
  f.start.uc_stack.ss_sp = f.stack.usable();
  f.start.uc_stack.ss_size = kStackBytes;
  f.start.uc_link = nullptr;  // fiber_main never returns
  makecontext(&f.start, fiber_main, 0);
}

__attribute__((noinline)) void run_fiber(Scheduler& s, size_t i) {
  Fiber& f = *s.fibers[i];
  s.current = i;
  coords = f.coords;
  f.wait = Wait::Runnable;
  void* fake = nullptr;
  start_switch(&fake, f.stack.usable(), kStackBytes);
  if (!_setjmp(s.back)) {
    if (!f.started) {
      f.started = true;
      make_entry(f);
      setcontext(&f.start);
    }
    _longjmp(f.resume, 1);
  }
  finish_switch(fake, nullptr, nullptr);
}

// After every runnable fiber ran to its next wait: wakes each warp whose live lanes all wait at
// a shuffle, else the block if all its live threads wait at __syncthreads(). False when live
// threads remain and none can be woken: they wait at barriers the others never reach.
bool wake_waiting(Scheduler& s, bool* all_done) {
  const size_t T = s.threads;
  size_t live = 0, at_block = 0;
  bool woke = false;
  for (size_t w0 = 0; w0 < T; w0 += kWarp) {
    const size_t w1 = std::min(T, w0 + kWarp);
    size_t warp_live = 0, warp_waiting = 0;
    for (size_t i = w0; i < w1; ++i) {
      const Wait w = s.fibers[i]->wait;
      if (w == Wait::Done) continue;
      ++warp_live;
      warp_waiting += w == Wait::Warp;
      at_block += w == Wait::Block;
    }
    live += warp_live;
    if (warp_live && warp_waiting == warp_live) {
      for (size_t i = w0; i < w1; ++i)
        if (s.fibers[i]->wait == Wait::Warp) s.fibers[i]->wait = Wait::Runnable;
      woke = true;
    }
  }
  *all_done = live == 0;
  if (woke || live == 0) return true;
  if (at_block != live) return false;
  for (size_t i = 0; i < T; ++i)
    if (s.fibers[i]->wait == Wait::Block) s.fibers[i]->wait = Wait::Runnable;
  return true;
}

bool valid_configuration(dim3 grid, dim3 block, size_t smem) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535 &&
         block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
         threads <= 1024 && smem <= kMaxDynamicShared;
}

// Runs one block; false if its threads deadlocked at barriers (their fibers are then restarted
// from scratch at their next use).
bool run_block(Scheduler& s, uint3 block_idx, dim3 grid, dim3 block) {
  ++s.block_serial;
  size_t t = 0;
  for (unsigned z = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x, ++t) {
        s.fibers[t]->coords = Coordinates{block_idx, uint3{x, y, z}, block, grid};
        s.fibers[t]->wait = Wait::Runnable;
      }
  const bool reverse = run_order == Order::Reverse;
  for (;;) {
    for (size_t k = 0; k < s.threads; ++k) {
      const size_t i = reverse ? s.threads - 1 - k : k;
      if (s.fibers[i]->wait == Wait::Runnable) run_fiber(s, i);
    }
    bool done = false;
    if (!wake_waiting(s, &done)) {
      for (size_t i = 0; i < s.threads; ++i)
        if (s.fibers[i]->wait != Wait::Done) s.fibers[i]->started = false;
      return false;
    }
    if (done) return true;
  }
}

}  // namespace

void launch(dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream, std::function<void()> body) {
  if (!valid_configuration(grid, block, dynamic_smem)) {  // a launch error, also while capturing
    set_error(dynamic_smem > kMaxDynamicShared ? cudaErrorInvalidValue : cudaErrorInvalidConfiguration);
    return;
  }
  enqueue(stream, [grid, block, dynamic_smem, body = std::move(body)] { run_grid(grid, block, dynamic_smem, body); });
}

void run_grid(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body) {
  if (!scheduler) scheduler = std::make_unique<Scheduler>();
  Scheduler& s = *scheduler;
  if (s.active) {
    std::fprintf(stderr, "cuda emulator: a launch from inside a kernel is not supported\n");
    set_error(cudaErrorNotSupported);
    return;
  }
  s.threads = size_t(block.x) * block.y * block.z;
  while (s.fibers.size() < s.threads) s.fibers.push_back(std::make_unique<Fiber>());
  s.lanes.assign(s.threads, 0);
  s.dynamic_shared.assign(dynamic_smem ? dynamic_smem : 1, 0xA5);  // not zero: kernels must fill it
  s.body = &body;
  s.active = true;
  const Coordinates saved = coords;
  bool ok = true;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  for (uint64_t k = 0; k < blocks && ok; ++k) {
    const uint64_t b = run_order == Order::Reverse ? blocks - 1 - k : k;  // x fastest, then y, then z
    const uint3 idx{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
    ok = run_block(s, idx, grid, block);
  }
  s.active = false;
  coords = saved;
  if (!ok) {
    std::fprintf(stderr, "cuda emulator: threads of a block wait at barriers the others never reach\n");
    set_error(cudaErrorLaunchFailure);
  }
}

void set_order(Order o) { run_order = o; }
Order order() { return run_order; }

void sync_block() { yield(Wait::Block); }

void* dynamic_shared() { return scheduler->dynamic_shared.data(); }

void fresh_shared(void* p, size_t bytes) {
  Scheduler& s = *scheduler;
  for (auto& [array, serial] : s.shared_filled)
    if (array == p) {
      if (serial != s.block_serial) std::memset(p, 0xFF, bytes), serial = s.block_serial;
      return;
    }
  std::memset(p, 0xFF, bytes);
  s.shared_filled.emplace_back(p, s.block_serial);
}

uint64_t shuffle_down(unsigned mask, uint64_t bits, unsigned delta) {
  Scheduler& r = *scheduler;
  if (mask != 0xffffffffu) {  // partial masks are not emulated: fail the launch visibly
    std::fprintf(stderr, "cuda emulator: shuffle with a partial mask\n");
    set_error(cudaErrorNotSupported);
    return bits;
  }
  const size_t me = r.current;
  r.lanes[me] = bits;
  yield(Wait::Warp);  // every live lane has published
  const size_t lane = me % kWarp, src = me + delta;
  const bool inside = lane + delta < kWarp && src < r.threads && r.fibers[src]->wait != Wait::Done;
  const uint64_t got = inside ? r.lanes[src] : bits;
  yield(Wait::Warp);  // every lane has read before the next shuffle publishes
  return got;
}

}  // namespace gpen::cuda::emu

#include "weights/pth.h"

#include <minizip/unzip.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>

#include "core/error.h"
#include "weights/mapped_file.h"
#include "weights/minizip_io.h"
#include "weights/pickle.h"

namespace gpen {

namespace {

using pickle::StorageRef;
using pickle::TensorRef;
using pickle::Value;
using Kind = Value::Kind;

// Raw bytes of one root storage, kept alive by `keepalive`.
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<void> keepalive;
};
using StorageLoader = std::function<Bytes(const StorageRef&)>;

constexpr uint64_t kMaxPickleBytes = uint64_t(1) << 30;
// A view with more elements than its storage (stride 0 from expand(), or overlapping strides) is
// stored compactly but copied out in full; cap that so a tiny file cannot demand gigabytes.
constexpr uint64_t kMaxBroadcastBytes = uint64_t(16) << 20;

// 64-byte aligned, like Tensor's own storage, so f32 tensors can point straight into it.
Bytes aligned_bytes(size_t n) {
  size_t rounded = (n + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) fail("out of memory allocating ", n, " bytes");
  Bytes b;
  b.keepalive = std::shared_ptr<void>(p, std::free);
  b.data = static_cast<const uint8_t*>(p);
  b.size = n;
  return b;
}

// Errors from deep inside (pickle, tensor checks) get the file name in front.
template <class F>
StateDict with_file_context(const std::string& name, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error("'" + name + "': " + e.what());
  }
}

// ---- finding the state dict in a checkpoint --------------------------------------------------

// Where training code nests the weights, best first (EMA weights beat raw ones).
const char* const kNestedKeys[] = {"params_ema", "g_ema", "state_dict", "model_state_dict", "model",
                                   "params", "net", "generator", "netG", "module"};
constexpr int kMaxNesting = 3;

bool holds_tensors(const Value* dict) {
  for (const auto& [k, v] : dict->entries)
    if (v->is(Kind::Tensor)) return true;
  return false;
}

const Value* find_state_dict(const Value* obj, int depth) {
  if (!obj->is(Kind::Dict) || depth > kMaxNesting) return nullptr;
  if (holds_tensors(obj)) return obj;
  for (const char* key : kNestedKeys)
    if (const Value* inner = obj->get(key))
      if (const Value* found = find_state_dict(inner, depth + 1)) return found;
  return nullptr;
}

std::string list_keys(const Value* dict) {
  std::string out;
  size_t n = 0;
  for (const auto& [k, v] : dict->entries) {
    if (n++ == 10) return out + ", ...";
    out += (out.empty() ? "" : ", ") + (k->is(Kind::String) ? pickle::printable(k->text, 40) : pickle::kind_name(k->kind));
  }
  return out;
}

std::string strip_module_prefix(const std::string& key) {
  static const std::string prefix = "module.";
  return key.compare(0, prefix.size(), prefix) == 0 ? key.substr(prefix.size()) : key;
}

// ---- turning a TensorRef plus storage bytes into a Tensor --------------------------------------

std::string strides_str(const std::vector<int64_t>& stride) {
  std::string s = "(";
  for (size_t i = 0; i < stride.size(); ++i) s += (i ? ", " : "") + std::to_string(stride[i]);
  return s + ")";
}

bool is_row_major(const TensorRef& t) {
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] != 1 && t.stride[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

// Elements the tensor spans in its storage view: storage_offset + max index + 1 (0 if empty).
int64_t checked_extent(const std::string& key, const TensorRef& t, int64_t* numel) {
  int64_t n = 1, last = t.storage_offset;
  bool overflow = false;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    int64_t step;
    overflow |= __builtin_mul_overflow(n, t.shape[i], &n);
    if (t.shape[i] > 0) {
      overflow |= __builtin_mul_overflow(t.shape[i] - 1, t.stride[i], &step);
      overflow |= __builtin_add_overflow(last, step, &last);
    }
  }
  if (overflow) fail("tensor '", key, "': shape ", shape_str(t.shape), " with strides ", strides_str(t.stride), " overflows");
  *numel = n;
  return n == 0 ? 0 : last + 1;
}

// A strided view copied out element by element (only for non-contiguous tensors, which are rare).
Tensor gather(const TensorRef& t, const uint8_t* base) {
  const size_t elsize = dtype_size(t.storage.dtype);
  Tensor out = Tensor::empty(t.storage.dtype, t.shape);
  uint8_t* dst = out.data<uint8_t>();
  const size_t nd = t.shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t src = 0;  // element offset of idx
  for (int64_t i = 0, n = out.numel(); i < n; ++i) {
    std::memcpy(dst + size_t(i) * elsize, base + size_t(src) * elsize, elsize);
    for (size_t d = nd; d-- > 0;) {  // odometer increment, keeping `src` in step
      src += t.stride[d];
      if (++idx[d] < t.shape[d]) break;
      src -= t.stride[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

Tensor materialize(const std::string& key, const TensorRef& t, const Bytes& storage) {
  const StorageRef& s = t.storage;
  const size_t elsize = dtype_size(s.dtype);
  uint64_t declared_bytes;
  if (__builtin_mul_overflow(uint64_t(s.root_numel), uint64_t(elsize), &declared_bytes) || storage.size < declared_bytes) {
    fail("tensor '", key, "': storage '", pickle::printable(s.key), "' holds ", storage.size, " bytes, but ", s.root_numel, " ",
         dtype_name(s.dtype), " elements need ", s.root_numel, " x ", elsize, " (tensor built at pickle byte ", t.pickle_offset, ")");
  }
  int64_t numel = 0;
  const int64_t extent = checked_extent(key, t, &numel);
  if (numel == 0) return Tensor::empty(s.dtype, t.shape);
  if (extent > s.view_numel) {
    fail("tensor '", key, "': shape ", shape_str(t.shape), " with strides ", strides_str(t.stride), " at offset ", t.storage_offset,
         " needs ", extent, " elements but storage '", pickle::printable(s.key), "' has ", s.view_numel,
         " (tensor built at pickle byte ", t.pickle_offset, ")");
  }
  if (numel > s.view_numel && uint64_t(numel) * elsize > kMaxBroadcastBytes) {
    fail("tensor '", key, "': shape ", shape_str(t.shape), " with strides ", strides_str(t.stride), " repeats its ", s.view_numel,
         " stored elements into ", numel, "; refusing to materialise more than ", kMaxBroadcastBytes, " bytes");
  }
  const uint8_t* base = storage.data + size_t(s.view_offset + t.storage_offset) * elsize;
  if (!is_row_major(t)) return gather(t, base);
  Tensor view = Tensor::wrap(s.dtype, t.shape, const_cast<uint8_t*>(base), storage.keepalive);
  return reinterpret_cast<uintptr_t>(base) % elsize == 0 ? view : view.clone();
}

StateDict build_state_dict(const Value* root, const StorageLoader& load) {
  const Value* dict = find_state_dict(root, 0);
  if (!dict) {
    if (!root->is(Kind::Dict)) fail("the checkpoint holds a ", pickle::kind_name(root->kind), ", not a dict of tensors");
    fail("no tensors found in the checkpoint (top-level keys: ", list_keys(root), ")");
  }
  StateDict sd;
  std::map<std::string, Bytes> storages;  // root key -> bytes, each read once however many views
  for (const auto& [k, v] : dict->entries) {
    if (!k->is(Kind::String) || !v->is(Kind::Tensor)) continue;
    const std::string key = strip_module_prefix(k->text);
    if (sd.tensors.count(key)) fail("duplicate tensor '", key, "' after stripping 'module.'");
    const TensorRef& t = *v->tensor;
    auto it = storages.find(t.storage.key);
    if (it == storages.end()) it = storages.emplace(t.storage.key, load(t.storage)).first;
    sd.tensors[key] = materialize(key, t, it->second);
  }
  return sd;
}

// ---- zip ------------------------------------------------------------------------------------

// Every zip ends with the end-of-central-directory record: 22 bytes, then a comment of the length
// it states. minizip skips that record when a zip64 locator comes before it (torch writes one), so
// a file cut inside it would still open; checking for it reports a truncated download as such.
constexpr size_t kEndRecordSize = 22;
constexpr size_t kMaxComment = 0xffff;

bool ends_with_end_record(const uint8_t* data, size_t size) {
  if (size < kEndRecordSize) return false;
  for (size_t pos = size - kEndRecordSize;; --pos) {
    const uint8_t* p = data + pos;
    const size_t comment = size_t(p[20]) | size_t(p[21]) << 8;
    if (std::memcmp(p, "PK\x05\x06", 4) == 0 && pos + kEndRecordSize + comment == size) return true;
    if (pos == 0 || size - pos - kEndRecordSize == kMaxComment) return false;
  }
}

// The last `n` bytes of a file (all of it if shorter), and the file's size.
std::string read_file_tail(const std::string& path, size_t n, uint64_t* file_size) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail("cannot open: ", std::strerror(errno));
  const std::streamoff end = f.tellg();
  if (end < 0) fail("cannot read: ", std::strerror(errno));
  *file_size = uint64_t(end);
  std::string tail(size_t(std::min<uint64_t>(*file_size, n)), '\0');
  f.seekg(end - std::streamoff(tail.size()));
  if (!f.read(tail.data(), std::streamsize(tail.size()))) fail("cannot read: ", std::strerror(errno));
  return tail;
}

void check_end_record(const uint8_t* tail, size_t size) {
  if (!ends_with_end_record(tail, size)) fail("not a readable zip archive (its end-of-central-directory record is missing or cut short)");
}

// A torch zip archive read with minizip, from memory or from a file. In memory every byte minizip
// reads goes through the bounds-checked MinizipMemoryFile; a file is read through stdio, not
// mapped, so that loading holds only the tensors' copies. Damage gives an error, never a stray read.
class ZipArchive {
 public:
  // Bytes in memory, not copied: they must outlive the archive.
  ZipArchive(const uint8_t* data, size_t size) : archive_size_(size) {
    check_end_record(data, size);
    memory_.emplace(data, size);
    zlib_filefunc64_def io = memory_->functions();
    open(unzOpen2_64("<memory>", &io));
  }
  explicit ZipArchive(const std::string& path) {
    const std::string tail = read_file_tail(path, kEndRecordSize + kMaxComment, &archive_size_);
    check_end_record(reinterpret_cast<const uint8_t*>(tail.data()), tail.size());
    open(unzOpen64(path.c_str()));
  }
  ~ZipArchive() { unzClose(uf_); }
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  // The "<archive>/" folder holding data.pkl.
  std::string find_prefix() const {
    int r = unzGoToFirstFile(uf_);
    for (size_t entry = 0; r == UNZ_OK; ++entry, r = unzGoToNextFile(uf_)) {
      const std::string s = current_name(entry);
      size_t slash = s.find('/');
      if (slash != std::string::npos && s.compare(slash + 1, std::string::npos, "data.pkl") == 0) return s.substr(0, slash + 1);
    }
    if (r != UNZ_END_OF_LIST_OF_FILE) fail("zip central directory is damaged (minizip error ", r, ")");
    fail("zip archive has no <archive>/data.pkl entry; not a torch checkpoint");
  }

  bool has(const std::string& name) const { return unzLocateFile(uf_, name.c_str(), kCaseSensitive) == UNZ_OK; }

  Bytes read(const std::string& name, uint64_t max_size) const {
    if (!has(name)) fail("zip entry '", pickle::printable(name), "' is missing");
    unz_file_info64 info;
    if (unzGetCurrentFileInfo64(uf_, &info, nullptr, 0, nullptr, 0, nullptr, 0) != UNZ_OK) fail("cannot stat zip entry '", name, "'");
    check_plausible_size(name, info, max_size);
    if (unzOpenCurrentFile(uf_) != UNZ_OK) {
      fail("cannot open zip entry '", name, "' (damaged local header, or compression method ", info.compression_method,
           " that is neither stored nor deflated)");
    }
    const uint64_t size = info.uncompressed_size;
    Bytes b = aligned_bytes(size_t(size));
    uint8_t* dst = const_cast<uint8_t*>(b.data);
    uint64_t got = 0;
    while (got < size) {
      const unsigned chunk = unsigned(std::min<uint64_t>(size - got, kMaxReadChunk));
      const int r = unzReadCurrentFile(uf_, dst + got, chunk);
      if (r <= 0) break;
      got += uint64_t(r);
    }
    // minizip checks the CRC on close, and only once a read has reached the end of the entry.
    uint8_t extra;
    const bool at_end = got == size && unzReadCurrentFile(uf_, &extra, 1) == 0;
    const int closed = unzCloseCurrentFile(uf_);
    if (!at_end || closed != UNZ_OK) {
      fail("zip entry '", name, "' is truncated or corrupt (read ", got, " of ", size, " bytes",
           closed == UNZ_CRCERROR ? "; CRC mismatch" : "", ")");
    }
    return b;
  }

 private:
  static constexpr int kCaseSensitive = 1;
  static constexpr uint64_t kMaxReadChunk = uint64_t(1) << 30;  // unzReadCurrentFile takes an unsigned
  std::optional<MinizipMemoryFile> memory_;  // in place: minizip holds a pointer to it
  unzFile uf_ = nullptr;
  uint64_t archive_size_ = 0;

  void open(unzFile uf) {
    // minizip says no more than this: the central directory it points to is missing or damaged.
    if (!uf) fail("not a readable zip archive (no valid central directory)");
    uf_ = uf;
  }

  // Name of the entry at the cursor (names may hold any byte; a zip caps them at 65535).
  std::string current_name(size_t entry) const {
    unz_file_info64 info;
    if (unzGetCurrentFileInfo64(uf_, &info, nullptr, 0, nullptr, 0, nullptr, 0) != UNZ_OK) fail("cannot read zip entry ", entry);
    std::string name(info.size_filename, '\0');
    if (unzGetCurrentFileInfo64(uf_, nullptr, name.data(), uLong(name.size()), nullptr, 0, nullptr, 0) != UNZ_OK) {
      fail("cannot read the name of zip entry ", entry);
    }
    return name;
  }

  // The central directory states sizes; do not allocate what the archive cannot hold.
  void check_plausible_size(const std::string& name, const unz_file_info64& info, uint64_t max_size) const {
    const uint64_t size = info.uncompressed_size;
    if (size > max_size) fail("zip entry '", name, "' is ", size, " bytes, more than the ", max_size, " expected");
    const bool stored = info.compression_method == 0;
    const uint64_t possible = stored ? archive_size_ : archive_size_ * 1100;  // deflate tops out near 1032:1
    if (size > possible) fail("zip entry '", name, "' claims ", size, " bytes, more than a ", archive_size_, "-byte archive can hold");
  }
};

StateDict read_zip(const ZipArchive& zip) {
  const std::string prefix = zip.find_prefix();
  if (zip.has(prefix + "byteorder")) {
    Bytes order = zip.read(prefix + "byteorder", 16);
    std::string s(reinterpret_cast<const char*>(order.data), order.size);
    if (s == "big") fail("big-endian checkpoints are not supported");
    if (s != "little") fail("unknown byteorder '", pickle::printable(s), "'");
  }
  Bytes pkl = zip.read(prefix + "data.pkl", kMaxPickleBytes);
  pickle::Pickle p = pickle::unpickle(pkl.data, pkl.size);
  return build_state_dict(p.root(), [&](const StorageRef& s) {
    uint64_t declared;
    if (__builtin_mul_overflow(uint64_t(s.root_numel), uint64_t(dtype_size(s.dtype)), &declared)) declared = UINT64_MAX;
    // Reading more than the pickle declares would be pointless; less is reported by materialize().
    return zip.read(prefix + "data/" + s.key, declared);
  });
}

// ---- legacy ---------------------------------------------------------------------------------

// 0x1950a86a20f9469cfc6c as pickle's little-endian LONG1 payload.
const uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;

class LegacyReader {
 public:
  LegacyReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  StateDict read() {
    check_header();
    pickle::Pickle obj = next_pickle();
    pickle::Pickle keys = next_pickle();
    index_storages(obj, keys.root());
    return build_state_dict(obj.root(), [&](const StorageRef& s) { return copy_storage(s); });
  }

 private:
  struct Block {
    size_t offset;  // of the raw bytes, just after the element count
    size_t size;
  };
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::map<std::string, Block> blocks_;

  pickle::Pickle next_pickle() {
    pickle::Pickle p = pickle::unpickle(data_ + pos_, size_ - pos_, {}, pos_);
    pos_ += p.end();
    return p;
  }

  void check_header() {
    pickle::Pickle magic = next_pickle();
    const Value* m = magic.root();
    if (!m->is(Kind::BigInt) || m->text != std::string(reinterpret_cast<const char*>(kLegacyMagic), sizeof kLegacyMagic)) {
      fail("not a legacy torch checkpoint (bad magic number)");
    }
    pickle::Pickle version = next_pickle();
    if (!version.root()->is(Kind::Int) || version.root()->integer != kLegacyProtocol) fail("unsupported legacy protocol version");
    pickle::Pickle sys_info = next_pickle();
    const Value* little = sys_info.root()->get("little_endian");
    if (little && little->is(Kind::Bool) && !little->boolean) fail("big-endian checkpoints are not supported");
  }

  // Walks the storage blocks after the pickles, recording where each key's bytes are.
  void index_storages(const pickle::Pickle& obj, const Value* keys) {
    std::map<std::string, DType> dtypes;
    for (const Value* v : obj.storages()) {
      auto [it, fresh] = dtypes.emplace(v->storage->key, v->storage->dtype);
      if (!fresh && it->second != v->storage->dtype) fail("storage '", pickle::printable(v->storage->key), "' is used with two dtypes");
    }
    if (!keys->is(Kind::List)) fail("legacy storage key list is a ", pickle::kind_name(keys->kind), ", not a list");
    for (const Value* k : keys->items) {
      if (!k->is(Kind::String) && !k->is(Kind::Bytes)) fail("legacy storage key is a ", pickle::kind_name(k->kind));
      auto it = dtypes.find(k->text);
      if (it == dtypes.end()) fail("storage '", pickle::printable(k->text), "' is listed but never used");
      blocks_[k->text] = next_block(k->text, dtype_size(it->second));
    }
  }

  Block next_block(const std::string& key, size_t elsize) {
    if (size_ - pos_ < 8) fail("file ends at byte ", size_, " before the size of storage '", pickle::printable(key), "'");
    uint64_t numel = 0;
    for (int i = 0; i < 8; ++i) numel |= uint64_t(data_[pos_ + size_t(i)]) << (8 * i);
    pos_ += 8;
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, uint64_t(elsize), &bytes) || bytes > size_ - pos_) {
      fail("storage '", pickle::printable(key), "' of ", numel, " elements at byte ", pos_ - 8, " runs past the end of the ", size_, "-byte file");
    }
    Block b{pos_, size_t(bytes)};
    pos_ += size_t(bytes);
    return b;
  }

  Bytes copy_storage(const StorageRef& s) {
    auto it = blocks_.find(s.key);
    if (it == blocks_.end()) fail("storage '", pickle::printable(s.key), "' has no data in the file");
    Bytes b = aligned_bytes(it->second.size);
    if (it->second.size) std::memcpy(const_cast<uint8_t*>(b.data), data_ + it->second.offset, it->second.size);
    return b;
  }
};

bool starts_with_zip_magic(const uint8_t* data, size_t size) { return size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0; }

}  // namespace

StateDict load_pth_zip(const std::string& path) {
  return with_file_context(path, [&] {
    ZipArchive zip(path);
    return read_zip(zip);
  });
}

StateDict load_pth_zip_buffer(const uint8_t* data, size_t size, const std::string& name) {
  return with_file_context(name, [&] {
    ZipArchive zip(data, size);
    return read_zip(zip);
  });
}

StateDict load_pth_legacy_buffer(const uint8_t* data, size_t size, const std::string& name) {
  return with_file_context(name, [&] {
    if (size == 0) fail("file is empty");
    return LegacyReader(data, size).read();
  });
}

StateDict load_pth_legacy(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return load_pth_legacy_buffer(file->data(), file->size(), path);
}

StateDict load_pth(const std::string& path) {
  std::string head = read_file_prefix(path, 4);
  if (starts_with_zip_magic(reinterpret_cast<const uint8_t*>(head.data()), head.size())) return load_pth_zip(path);
  return load_pth_legacy(path);
}

}  // namespace gpen

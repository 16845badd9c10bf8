#include "weights/pickle.h"

#include <cstring>

#include "core/error.h"

namespace gpen::pickle {

namespace {

// Opcodes we accept. Everything not listed here is refused (unsupported, not executed).
enum Op : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2',
  BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R',
  BINSTRING = 'T', SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b',
  GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j',
  LIST = 'l', EMPTY_LIST = ']', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't',
  EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
  NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
  BINBYTES = 'B', SHORT_BINBYTES = 'C',
  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
};

using Kind = Value::Kind;

// Dict keys we can compare (str, int, bool, None) get an identity string; others never match.
std::string dict_key_id(const Value* k) {
  switch (k->kind) {
    case Kind::String: return "s" + k->text;
    case Kind::Int: return "i" + std::to_string(k->integer);
    case Kind::Bool: return k->boolean ? "i1" : "i0";  // True == 1 in Python
    case Kind::None: return "n";
    default: return std::string();
  }
}

// "0x63 ('c')": opcodes are mostly printable letters, which is how pickle docs name them.
std::string hex_byte(uint8_t b) {
  static const char hex[] = "0123456789abcdef";
  std::string s = {'0', 'x', hex[b >> 4], hex[b & 15]};
  if (b >= 0x21 && b < 0x7f && b != '\'') s += std::string(" ('") + char(b) + "')";
  return s;
}

bool is_name_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

}  // namespace

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "big int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

const Value* Value::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = index.find("s" + key);
  return it == index.end() ? nullptr : entries[it->second].second;
}

bool storage_type_dtype(const std::string& type_name, DType* out) {
  static const struct { const char* name; DType dtype; } table[] = {
      {"torch.FloatStorage", DType::F32},  {"torch.HalfStorage", DType::F16},
      {"torch.BFloat16Storage", DType::BF16}, {"torch.DoubleStorage", DType::F64},
      {"torch.LongStorage", DType::I64},   {"torch.IntStorage", DType::I32},
      {"torch.ByteStorage", DType::U8},    {"torch.BoolStorage", DType::Bool},
  };
  for (const auto& e : table)
    if (type_name == e.name) {
      *out = e.dtype;
      return true;
    }
  return false;
}

std::string printable(const std::string& s, size_t max_len) {
  std::string out;
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    uint8_t c = uint8_t(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'') {
      out += char(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const Limits& limits, size_t base)
      : data_(data), size_(size), lim_(limits), base_(base) {}

  Pickle run() {
    uint64_t ops = 0;
    while (true) {
      op_start_ = pos_;
      if (pos_ >= size_) error("data ended before the STOP opcode");
      if (++ops > lim_.max_ops) error("more than ", lim_.max_ops, " operations");
      uint8_t op = data_[pos_++];
      if (op == STOP) break;
      step(op);
    }
    out_.root_ = pop();
    out_.end_ = pos_;
    return std::move(out_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  Limits lim_;
  size_t base_;
  size_t pos_ = 0;
  size_t op_start_ = 0;
  Pickle out_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;  // stack heights at each MARK
  std::unordered_map<uint64_t, Value*> memo_;

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("pickle: ", args..., " at byte ", base_ + op_start_);
  }

  // ---- reading arguments ----------------------------------------------------------------------
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) error("truncated: opcode ", hex_byte(data_[op_start_]), " needs ", n, " more bytes, ", size_ - pos_, " left");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
  }
  std::string read_bytes(uint64_t n) {
    if (n > lim_.max_string) error("string of ", n, " bytes exceeds the limit of ", lim_.max_string);
    const uint8_t* p = take(size_t(n));
    return std::string(reinterpret_cast<const char*>(p), size_t(n));
  }
  // A GLOBAL operand line: a dotted Python name ending in '\n'.
  std::string read_name_line() {
    size_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') {
      if (!is_name_char(data_[pos_]) || pos_ - start > 256) error("malformed GLOBAL name");
      ++pos_;
    }
    if (pos_ >= size_ || pos_ == start) error("malformed GLOBAL name");
    std::string s(reinterpret_cast<const char*>(data_ + start), pos_ - start);
    ++pos_;  // the newline
    return s;
  }

  // ---- values and the stack ---------------------------------------------------------------------
  Value* make(Kind k) {
    out_.arena_.push_back(std::make_unique<Value>());
    Value* v = out_.arena_.back().get();
    v->kind = k;
    return v;
  }
  Value* make_int(int64_t i) {
    Value* v = make(Kind::Int);
    v->integer = i;
    return v;
  }
  Value* make_text(Kind k, std::string s) {
    Value* v = make(k);
    v->text = std::move(s);
    return v;
  }
  Value* make_bool(bool b) {
    Value* v = make(Kind::Bool);
    v->boolean = b;
    return v;
  }
  void push(Value* v) {
    if (stack_.size() >= lim_.max_stack) error("stack deeper than ", lim_.max_stack);
    stack_.push_back(v);
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value* pop() {
    if (stack_.size() <= floor()) error("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) error("stack underflow");
    return stack_.back();
  }
  std::vector<Value*> pop_to_mark() {
    if (marks_.empty()) error("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + long(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  // Records that `child` now sits inside `parent`, enforcing the nesting limit.
  void nest(Value* parent, const Value* child) {
    if (child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > lim_.max_depth) error("containers nested deeper than ", lim_.max_depth);
  }
  Value* make_sequence(Kind k, std::vector<Value*> items) {
    Value* v = make(k);
    for (Value* item : items) nest(v, item);
    v->items = std::move(items);
    return v;
  }
  void dict_set(Value* dict, Value* key, Value* value) {
    if (!dict->is(Kind::Dict)) error("SETITEM on a ", kind_name(dict->kind), ", not a dict");
    nest(dict, key);
    nest(dict, value);
    std::string id = dict_key_id(key);
    if (!id.empty()) {
      auto it = dict->index.find(id);
      if (it != dict->index.end()) {
        dict->entries[it->second].second = value;
        return;
      }
      dict->index.emplace(id, dict->entries.size());
    }
    dict->entries.emplace_back(key, value);
  }
  void list_append(Value* list, Value* item) {
    if (!list->is(Kind::List)) error("APPEND to a ", kind_name(list->kind), ", not a list");
    nest(list, item);
    list->items.push_back(item);
  }
  void memo_put(uint64_t index) {
    if (memo_.size() >= lim_.max_memo && !memo_.count(index)) error("memo larger than ", lim_.max_memo);
    memo_[index] = top();
  }
  Value* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) error("memo key ", index, " not found");
    return it->second;
  }

  // ---- one opcode -------------------------------------------------------------------------------
  void step(uint8_t op) {
    switch (op) {
      case PROTO: {
        uint64_t proto = read_le(1);
        if (proto > 5) error("unsupported pickle protocol ", proto);
        return;
      }
      case FRAME: read_le(8); return;  // framing is only a read-ahead hint
      case MARK:
        if (marks_.size() >= lim_.max_stack) error("more than ", lim_.max_stack, " nested MARKs");
        marks_.push_back(stack_.size());
        return;
      case POP: pop(); return;
      case POP_MARK: pop_to_mark(); return;
      case DUP: push(top()); return;

      case NONE: push(make(Kind::None)); return;
      case NEWTRUE: push(make_bool(true)); return;
      case NEWFALSE: push(make_bool(false)); return;
      case BININT: push(make_int(int32_t(uint32_t(read_le(4))))); return;
      case BININT1: push(make_int(int64_t(read_le(1)))); return;
      case BININT2: push(make_int(int64_t(read_le(2)))); return;
      case LONG1: push(make_long(read_le(1))); return;
      case LONG4: {
        int32_t n = int32_t(uint32_t(read_le(4)));
        if (n < 0) error("negative LONG4 length");
        push(make_long(uint64_t(n)));
        return;
      }
      case BINFLOAT: push(make_float()); return;

      case BINUNICODE: push(make_text(Kind::String, read_bytes(read_le(4)))); return;
      case SHORT_BINUNICODE: push(make_text(Kind::String, read_bytes(read_le(1)))); return;
      case BINUNICODE8: push(make_text(Kind::String, read_bytes(read_le(8)))); return;
      case BINSTRING: {  // Python 2 str: a string for our purposes
        int32_t n = int32_t(uint32_t(read_le(4)));
        if (n < 0) error("negative BINSTRING length");
        push(make_text(Kind::String, read_bytes(uint64_t(n))));
        return;
      }
      case SHORT_BINSTRING: push(make_text(Kind::String, read_bytes(read_le(1)))); return;
      case BINBYTES: push(make_text(Kind::Bytes, read_bytes(read_le(4)))); return;
      case SHORT_BINBYTES: push(make_text(Kind::Bytes, read_bytes(read_le(1)))); return;
      case BINBYTES8: push(make_text(Kind::Bytes, read_bytes(read_le(8)))); return;

      case EMPTY_TUPLE: push(make(Kind::Tuple)); return;
      case EMPTY_LIST: push(make(Kind::List)); return;
      case EMPTY_DICT: push(make(Kind::Dict)); return;
      case TUPLE: push(make_sequence(Kind::Tuple, pop_to_mark())); return;
      case TUPLE1: case TUPLE2: case TUPLE3: {
        std::vector<Value*> items(size_t(op - TUPLE1 + 1));
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_sequence(Kind::Tuple, std::move(items)));
        return;
      }
      case LIST: push(make_sequence(Kind::List, pop_to_mark())); return;
      case DICT: {
        std::vector<Value*> items = pop_to_mark();
        Value* d = make(Kind::Dict);
        set_items(d, items);
        push(d);
        return;
      }

      case BINPUT: memo_put(read_le(1)); return;
      case LONG_BINPUT: memo_put(read_le(4)); return;
      case MEMOIZE: memo_put(memo_.size()); return;
      case BINGET: push(memo_get(read_le(1))); return;
      case LONG_BINGET: push(memo_get(read_le(4))); return;

      case APPEND: {
        Value* item = pop();
        list_append(top(), item);
        return;
      }
      case APPENDS: {
        std::vector<Value*> items = pop_to_mark();
        Value* list = top();
        for (Value* item : items) list_append(list, item);
        return;
      }
      case SETITEM: {
        Value* value = pop();
        Value* key = pop();
        dict_set(top(), key, value);
        return;
      }
      case SETITEMS: {
        std::vector<Value*> items = pop_to_mark();
        set_items(top(), items);
        return;
      }

      case GLOBAL: {
        std::string module = read_name_line();
        std::string name = read_name_line();
        push(make_text(Kind::Global, module + "." + name));
        return;
      }
      case STACK_GLOBAL: {
        Value* name = pop();
        Value* module = pop();
        if (!name->is(Kind::String) || !module->is(Kind::String)) error("STACK_GLOBAL needs two strings");
        push(make_text(Kind::Global, module->text + "." + name->text));
        return;
      }
      case REDUCE: {
        Value* args = pop();
        Value* callable = pop();
        push(call(callable, args));
        return;
      }
      case NEWOBJ: {
        Value* args = pop();
        Value* cls = pop();
        push(call(cls, args));
        return;
      }
      case NEWOBJ_EX: {
        Value* kwargs = pop();
        Value* args = pop();
        Value* cls = pop();
        if (!kwargs->is(Kind::Dict) || !kwargs->entries.empty()) {
          error("refusing to call '", printable(cls->is(Kind::Global) ? cls->text : kind_name(cls->kind)), "' with keyword arguments");
        }
        push(call(cls, args));
        return;
      }
      case BUILD:
        // Sets attributes (__setstate__) on the object below; ours have none worth keeping, e.g. an
        // OrderedDict's `_metadata` or a Parameter's Python attributes. Nothing is executed.
        pop();
        top();
        return;
      case BINPERSID: push(persistent_load(pop())); return;
      default: {
        error("unsupported opcode ", hex_byte(op));
      }
    }
  }

  void set_items(Value* dict, const std::vector<Value*>& items) {
    if (items.size() % 2) error("odd number of items for a dict");
    for (size_t i = 0; i < items.size(); i += 2) dict_set(dict, items[i], items[i + 1]);
  }

  Value* make_long(uint64_t nbytes) {
    std::string bytes = read_bytes(nbytes);
    if (bytes.size() > 8) return make_text(Kind::BigInt, std::move(bytes));
    uint64_t v = 0;
    for (size_t i = 0; i < bytes.size(); ++i) v |= uint64_t(uint8_t(bytes[i])) << (8 * i);
    if (!bytes.empty() && bytes.size() < 8 && (uint8_t(bytes.back()) & 0x80)) v |= ~uint64_t(0) << (8 * bytes.size());
    return make_int(int64_t(v));
  }

  Value* make_float() {
    const uint8_t* p = take(8);
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = bits << 8 | p[i];  // big-endian
    Value* v = make(Kind::Float);
    std::memcpy(&v->real, &bits, 8);
    return v;
  }

  // ---- the only "calls" we make: building our own values for known torch functions ------------
  Value* call(const Value* callable, const Value* args) {
    if (!callable->is(Kind::Global)) error("call of a ", kind_name(callable->kind), ", not a global");
    const std::string& name = callable->text;
    if (!args->is(Kind::Tuple)) error("arguments to '", printable(name), "' are a ", kind_name(args->kind), ", not a tuple");
    if (name == "collections.OrderedDict") return ordered_dict(args->items);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") return rebuild_tensor(name, args->items);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || !args->items[0]->is(Kind::Tensor)) error("'", name, "' expects a tensor first");
      return args->items[0];
    }
    if (name == "torch._tensor._rebuild_from_type_v2") return rebuild_from_type(args->items);
    error("refusing to call '", printable(name), "'");
  }

  Value* ordered_dict(const std::vector<Value*>& args) {
    Value* d = make(Kind::Dict);
    if (args.empty()) return d;
    if (args.size() > 1 || !(args[0]->is(Kind::List) || args[0]->is(Kind::Tuple))) error("unexpected OrderedDict arguments");
    for (Value* pair : args[0]->items) {
      if (!pair->is(Kind::Tuple) || pair->items.size() != 2) error("OrderedDict item is not a (key, value) pair");
      dict_set(d, pair->items[0], pair->items[1]);
    }
    return d;
  }

  // _rebuild_from_type_v2(func, new_type, args, state): a tensor with Python attributes.
  Value* rebuild_from_type(const std::vector<Value*>& args) {
    if (args.size() != 4 || !args[0]->is(Kind::Global) || !args[1]->is(Kind::Global)) error("unexpected _rebuild_from_type_v2 arguments");
    const std::string& type = args[1]->text;
    if (type != "torch.Tensor" && type != "torch.nn.parameter.Parameter") error("refusing to rebuild a tensor as '", printable(type), "'");
    if (args[0]->text == "torch._tensor._rebuild_from_type_v2") error("nested _rebuild_from_type_v2");
    Value* t = call(args[0], args[2]);
    if (!t->is(Kind::Tensor)) error("_rebuild_from_type_v2 did not produce a tensor");
    return t;
  }

  int64_t nonneg_int(const Value* v, const char* what) {
    if (!v->is(Kind::Int) || v->integer < 0) error(what, " is not a non-negative int");
    return v->integer;
  }
  std::vector<int64_t> int_sequence(const Value* v, const char* what) {
    if (!v->is(Kind::Tuple) && !v->is(Kind::List)) error(what, " is a ", kind_name(v->kind), ", not a tuple");
    if (v->items.size() > 32) error(what, " has ", v->items.size(), " dimensions");
    std::vector<int64_t> out;
    for (const Value* item : v->items) out.push_back(nonneg_int(item, what));
    return out;
  }

  // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
  Value* rebuild_tensor(const std::string& name, const std::vector<Value*>& args) {
    if (args.size() < 4) error("'", name, "' needs at least 4 arguments, got ", args.size());
    if (!args[0]->is(Kind::Storage)) error("tensor storage is a ", kind_name(args[0]->kind), ", not a persistent storage");
    auto t = std::make_unique<TensorRef>();
    t->storage = *args[0]->storage;
    t->storage_offset = nonneg_int(args[1], "storage offset");
    t->shape = int_sequence(args[2], "tensor size");
    t->stride = int_sequence(args[3], "tensor stride");
    if (t->stride.size() != t->shape.size()) error("tensor has ", t->shape.size(), " sizes but ", t->stride.size(), " strides");
    t->pickle_offset = base_ + op_start_;
    Value* v = make(Kind::Tensor);
    v->tensor = std::move(t);
    return v;
  }

  static bool is_text(const Value* v) { return v->is(Kind::String) || v->is(Kind::Bytes); }

  // ('storage', torch.XStorage, key, location, numel[, view_metadata])
  Value* persistent_load(const Value* pid) {
    if (!pid->is(Kind::Tuple) || pid->items.empty() || !is_text(pid->items[0])) error("persistent id is not a ('storage', ...) tuple");
    const auto& f = pid->items;
    if (f[0]->text != "storage") error("refusing persistent id of type '", printable(f[0]->text), "'");
    if (f.size() != 5 && f.size() != 6) error("storage persistent id has ", f.size(), " fields, expected 5 or 6");
    if (!f[1]->is(Kind::Global)) error("storage type is a ", kind_name(f[1]->kind), ", not a class name");
    auto s = std::make_unique<StorageRef>();
    s->type_name = f[1]->text;
    if (!storage_type_dtype(s->type_name, &s->dtype)) error("unsupported storage type '", printable(s->type_name), "'");
    if (!is_text(f[2])) error("storage key is a ", kind_name(f[2]->kind), ", not a string");
    s->key = f[2]->text;
    if (is_text(f[3])) s->location = f[3]->text;
    s->root_numel = nonneg_int(f[4], "storage size");
    s->view_numel = s->root_numel;
    if (f.size() == 6 && !f[5]->is(Kind::None)) apply_view(*s, f[5]);
    Value* v = make(Kind::Storage);
    v->storage = std::move(s);
    out_.storages_.push_back(v);
    return v;
  }

  // Legacy view_metadata (view_key, offset, size): a slice of the root storage, in elements.
  void apply_view(StorageRef& s, const Value* view) {
    if (!view->is(Kind::Tuple) || view->items.size() != 3) error("storage view metadata is not a (key, offset, size) tuple");
    s.view_offset = nonneg_int(view->items[1], "storage view offset");
    s.view_numel = nonneg_int(view->items[2], "storage view size");
    if (s.view_offset > s.root_numel || s.view_numel > s.root_numel - s.view_offset) {
      error("storage view [", s.view_offset, ", +", s.view_numel, ") is outside storage '", printable(s.key), "' of ", s.root_numel, " elements");
    }
  }
};

Pickle unpickle(const uint8_t* data, size_t size, const Limits& limits, size_t base_offset) {
  return Unpickler(data, size, limits, base_offset).run();
}

}  // namespace gpen::pickle

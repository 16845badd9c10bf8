// The restricted unpickler on hand-written pickles: what it builds, what it refuses, and that
// hostile or damaged input ends in a gpen::Error with a byte offset, never a crash.
// (Adjacent string literals below keep hex escapes from swallowing the next opcode letter.)
#include <catch2/catch.hpp>

#include "tests/test_weights_util.h"
#include "weights/pickle.h"

using Catch::Matchers::Contains;
using gpen::pickle::Value;
using weights_test::error_of;
using Kind = Value::Kind;
using namespace std::string_literals;

namespace {

gpen::pickle::Pickle run(const std::string& bytes, const gpen::pickle::Limits& limits = {}) {
  return gpen::pickle::unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), limits);
}
std::string error_running(const std::string& bytes, const gpen::pickle::Limits& limits = {}) {
  return error_of([&] { run(bytes, limits); });
}

// {'a': 1, 'b': [-1, 'x', 1.5, None, True], 'c': (b'hi', 70000)}
const std::string kDict =
    "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00"
    "b]q\x01(J\xff\xff\xff\xff\x8c\x01xG?\xf8\x00\x00\x00\x00\x00\x00N\x88" "eX\x01\x00\x00\x00"
    "cC\x02hiJp\x11\x01\x00\x86u."s;

}  // namespace

TEST_CASE("pickle: builds dicts, lists, tuples and scalars", "[weights][pickle]") {
  auto p = run(kDict);
  const Value* root = p.root();
  REQUIRE(root->is(Kind::Dict));
  REQUIRE(root->entries.size() == 3);
  CHECK(root->get("a")->integer == 1);
  const Value* b = root->get("b");
  REQUIRE(b->is(Kind::List));
  REQUIRE(b->items.size() == 5);
  CHECK(b->items[0]->integer == -1);
  CHECK(b->items[1]->text == "x");
  CHECK(b->items[2]->real == 1.5);
  CHECK(b->items[3]->is(Kind::None));
  CHECK(b->items[4]->boolean);
  const Value* c = root->get("c");
  REQUIRE(c->is(Kind::Tuple));
  CHECK(c->items[0]->is(Kind::Bytes));
  CHECK(c->items[0]->text == "hi");
  CHECK(c->items[1]->integer == 70000);
  CHECK(p.end() == kDict.size());
}

TEST_CASE("pickle: stops at STOP and reports where", "[weights][pickle]") {
  auto p = run(std::string("\x80\x02K\x07.", 5) + "trailing");
  CHECK(p.root()->integer == 7);
  CHECK(p.end() == 5);
}

TEST_CASE("pickle: LONG1 small, negative and big", "[weights][pickle]") {
  CHECK(run(std::string("\x8a\x01\xff.", 4)).root()->integer == -1);
  CHECK(run(std::string("\x8a\x00.", 3)).root()->integer == 0);
  CHECK(run(std::string("\x8a\x02\x00\x80.", 5)).root()->integer == -32768);
  CHECK(run(std::string("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", 11)).root()->integer == INT64_MIN);
  auto big = run(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  CHECK(big.root()->is(Kind::BigInt));
  CHECK(big.root()->text.size() == 10);
}

TEST_CASE("pickle: memo, MEMOIZE and STACK_GLOBAL (protocol 4)", "[weights][pickle]") {
  // [s, s] where s is memoized, then an OrderedDict() built from a STACK_GLOBAL
  auto p = run(std::string("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x01s\x94h\x01" "e.", 22));
  REQUIRE(p.root()->items.size() == 2);
  CHECK(p.root()->items[0] == p.root()->items[1]);
  auto d = run("\x8c\x0b" "collections\x8c\x0bOrderedDict\x93)R.");
  CHECK(d.root()->is(Kind::Dict));
}

TEST_CASE("pickle: refuses to call anything but known torch functions", "[weights][pickle]") {
  // os.system('touch x') as protocol 2 pickles it; REDUCE is at byte 32
  std::string evil = "\x80\x02" "cposix\nsystem\nq\x00X\x07\x00\x00\x00touch xq\x01\x85q\x02Rq\x03."s;
  std::string msg = error_running(evil);
  CHECK_THAT(msg, Contains("pickle: refusing to call 'posix.system'"));
  CHECK_THAT(msg, Contains("at byte 35"));
  CHECK_THAT(error_running("\x8c\x08" "builtins\x8c\x04" "eval\x93\x8c\x01" "x\x85R."s), Contains("refusing to call 'builtins.eval'"));
  // NEWOBJ of an arbitrary class, and BUILD cannot reach __setstate__ of anything
  CHECK_THAT(error_running("c__main__\nNet\n)\x81."), Contains("refusing to call '__main__.Net'"));
  // a call through a non-global (e.g. a string) is refused too
  CHECK_THAT(error_running("X\x01\x00\x00\x00" "a)R."s), Contains("not a global"));
  // _rebuild_from_type_v2 may only rebuild plain tensors / Parameters
  CHECK_THAT(error_running("ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\ncos\nPathLike\n)}tR."),
             Contains("refusing to rebuild a tensor as 'os.PathLike'"));
}

TEST_CASE("pickle: refuses opcodes outside the allowlist", "[weights][pickle]") {
  CHECK_THAT(error_running("(i__main__\nX\n."), Contains("unsupported opcode 0x69 ('i') at byte 1"));     // INST
  CHECK_THAT(error_running("(c__main__\nX\no."), Contains("unsupported opcode 0x6f ('o')"));             // OBJ
  CHECK_THAT(error_running("I1\n."), Contains("unsupported opcode 0x49 ('I') at byte 0"));                 // text INT
  CHECK_THAT(error_running("\x80\x09."), Contains("unsupported pickle protocol 9"));
  CHECK_THAT(error_running("cbad name\nx\n."), Contains("malformed GLOBAL name"));
}

TEST_CASE("pickle: damaged input is an error with a byte offset", "[weights][pickle]") {
  CHECK_THAT(error_running(""), Contains("data ended before the STOP opcode at byte 0"));
  CHECK_THAT(error_running("\x80\x02" "t."), Contains("no MARK to pop to at byte 2"));
  CHECK_THAT(error_running("\x80\x02\x85."), Contains("stack underflow at byte 2"));
  CHECK_THAT(error_running("(\x85."), Contains("stack underflow"));  // cannot pop below a MARK
  CHECK_THAT(error_running(std::string("h\x05.", 3)), Contains("memo key 5 not found at byte 0"));
  CHECK_THAT(error_running("X\xff\xff\xff\xff" "abc"), Contains("string of 4294967295 bytes exceeds the limit"));
  CHECK_THAT(error_running("X\x10\x00\x00\x00" "abc"s), Contains("truncated: opcode 0x58 ('X') needs 16 more bytes, 3 left at byte 0"));
  CHECK_THAT(error_running("K\x01K\x02" "a."), Contains("APPEND to a int, not a list"));
  CHECK_THAT(error_running("K\x01K\x02K\x03s."), Contains("SETITEM on a int"));
  CHECK_THAT(error_running("}(K\x01u."), Contains("odd number of items"));
  CHECK_THAT(error_running("."), Contains("stack underflow at byte 0"));
  // every strict prefix of a valid pickle fails cleanly
  for (size_t cut = 0; cut < kDict.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK_THAT(error_running(kDict.substr(0, cut)), Contains("pickle: "));
  }
}

TEST_CASE("pickle: resource limits", "[weights][pickle]") {
  gpen::pickle::Limits small;
  small.max_string = 4;
  CHECK_THAT(error_running("X\x05\x00\x00\x00hello."s, small), Contains("exceeds the limit of 4"));
  small = {};
  small.max_stack = 8;
  CHECK_THAT(error_running(std::string(9, 'N') + ".", small), Contains("stack deeper than 8 at byte 8"));
  small = {};
  small.max_ops = 3;
  CHECK_THAT(error_running("NNNN.", small), Contains("more than 3 operations"));
  small = {};
  small.max_memo = 2;
  CHECK_THAT(error_running(std::string("Nq\x00q\x01q\x02.", 8), small), Contains("memo larger than 2"));
  // tuples nested 100 deep: TUPLE1 applied over and over
  CHECK_THAT(error_running("N" + std::string(100, '\x85') + "."), Contains("nested deeper than 64"));
  // a list appended to itself again and again: a cycle, and ever deeper
  std::string cycle = std::string("]q\x00", 3);
  for (int i = 0; i < 100; ++i) cycle += std::string("h\x00" "a", 3);
  CHECK_THAT(error_running(cycle + "."), Contains("nested deeper than 64"));
  // a single self-reference is fine (and must not leak: values live in the Pickle's arena)
  auto p = run(std::string("]q\x00h\x00" "a.", 7));
  CHECK(p.root()->items[0] == p.root());
}

TEST_CASE("pickle: torch storages and tensors", "[weights][pickle]") {
  // torch._utils._rebuild_tensor_v2(('storage', torch.HalfStorage, '7', 'cpu', 12), 2, (2, 3), (3, 1), False, OrderedDict())
  const std::string storage = "(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x00" "7X\x03\x00\x00\x00" "cpuK\x0ctQ"s;
  const std::string tensor = "ctorch._utils\n_rebuild_tensor_v2\n(" + storage +
                             "K\x02K\x02K\x03\x86K\x03K\x01\x86\x89" "ccollections\nOrderedDict\n)RtR"s;
  auto p = run(tensor + ".");
  REQUIRE(p.root()->is(Kind::Tensor));
  const auto& t = *p.root()->tensor;
  CHECK(t.storage.dtype == gpen::DType::F16);
  CHECK(t.storage.key == "7");
  CHECK(t.storage.location == "cpu");
  CHECK(t.storage.root_numel == 12);
  CHECK(t.storage_offset == 2);
  CHECK(t.shape == gpen::Shape{2, 3});
  CHECK(t.stride == std::vector<int64_t>{3, 1});
  REQUIRE(p.storages().size() == 1);

  // _rebuild_parameter unwraps to the tensor
  auto param = run("ctorch._utils\n_rebuild_parameter\n(" + tensor + "\x88" "ccollections\nOrderedDict\n)RtR.");
  CHECK(param.root()->is(Kind::Tensor));

  auto with_type = [&](const std::string& type) {
    std::string s = "(X\x07\x00\x00\x00storagectorch\n"s + type + "\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."s;
    return error_running(s);
  };
  CHECK_THAT(with_type("ShortStorage"), Contains("unsupported storage type 'torch.ShortStorage'"));
  CHECK_THAT(error_running("(X\x06\x00\x00\x00modulecx\ny\ntQ."s), Contains("refusing persistent id of type 'module'"));
  CHECK_THAT(error_running("K\x01Q."), Contains("not a ('storage', ...) tuple"));
  // view metadata must lie inside the root storage
  CHECK_THAT(error_running("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x0a(X\x01\x00\x00\x00vK\x08K\x05ttQ."s),
             Contains("outside storage '0' of 10 elements"));
  // size and stride must be non-negative ints of equal length
  CHECK_THAT(error_running("ctorch._utils\n_rebuild_tensor_v2\n(" + storage + "K\x00K\x02\x85K\x01K\x01\x86\x89}tR."s),
             Contains("1 sizes but 2 strides"));
  CHECK_THAT(error_running("ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00)))tR."s), Contains("not a persistent storage"));
}

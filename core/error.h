// One exception type for every user-facing failure: bad file, bad shape, bad argument.
// Messages are one line and say what was wrong and where (file, key, byte offset).
#pragma once
#include <stdexcept>
#include <string>

namespace gpen {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Concatenates its arguments with operator<< into an Error.
template <class... Args>
[[noreturn]] void fail(const Args&... args);

}  // namespace gpen

#include <sstream>
namespace gpen {
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}
}  // namespace gpen

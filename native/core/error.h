// Errors crossing to JavaScript. Every check in the native code throws one of these; the
// binding turns TypeError into a JS TypeError and RangeError into a JS RangeError (anything
// else into a JS Error), so no input reachable from JS can crash the process.
// Messages name the argument, what was expected and what was received.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pit {

// Wrong kind of value: dtype, device, rank, a disposed tensor, a non-integer size.
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Right kind, wrong value: a size or index out of range, mismatched extents, out of memory.
struct RangeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream s;
  (s << ... << std::forward<Parts>(parts));
  return s.str();
}

}  // namespace pit

#define PIT_CHECK_TYPE(cond, ...) \
  do {                            \
    if (!(cond)) throw ::pit::TypeError(::pit::cat(__VA_ARGS__)); \
  } while (0)
#define PIT_CHECK_RANGE(cond, ...) \
  do {                             \
    if (!(cond)) throw ::pit::RangeError(::pit::cat(__VA_ARGS__)); \
  } while (0)

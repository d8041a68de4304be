// The one way the shims cross the extern "C" boundary: run the body, and turn
// any C++ exception into -1 with its message in `error` (never unwinding into
// Rust). c10's errors are reported without the C++ backtrace that what()
// appends, which would bury the user's message.
#pragma once

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>

namespace pixelcnn {

template <typename F>
int guarded(char* error, std::size_t error_len, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    if (error_len > 0) std::snprintf(error, error_len, "%s", e.what_without_backtrace());
  } catch (const std::exception& e) {
    if (error_len > 0) std::snprintf(error, error_len, "%s", e.what());
  } catch (...) {
    if (error_len > 0) std::snprintf(error, error_len, "unknown C++ exception");
  }
  return -1;
}

}  // namespace pixelcnn

// Each binding file registers its entry points with PIT_BINDING; module.cc exports them
// all. Every entry runs inside `guarded`, which turns pit::TypeError / pit::RangeError
// (and any other C++ exception) into the matching JavaScript error, so nothing thrown in
// native code can take the process down.
#pragma once
#include <napi.h>

#include <exception>
#include <new>
#include <vector>

#include "core/error.h"

namespace pit::binding {

using Entry = Napi::Value (*)(const Napi::CallbackInfo&);

struct Binding {
  const char* name;
  Entry fn;
};

std::vector<Binding>& bindings();

struct Register {
  Register(const char* name, Entry fn) { bindings().push_back({name, fn}); }
};

template <Entry F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;  // already a JS exception
  } catch (const pit::TypeError& e) {
    throw Napi::TypeError::New(env, e.what());
  } catch (const pit::RangeError& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace pit::binding

#define PIT_BINDING_CAT2(a, b) a##b
#define PIT_BINDING_CAT(a, b) PIT_BINDING_CAT2(a, b)
// PIT_BINDING("layernormForward", LayernormForward) exports LayernormForward to JS.
#define PIT_BINDING(js_name, fn)                                     \
  static ::pit::binding::Register PIT_BINDING_CAT(pit_register_, __LINE__)( \
      js_name, &::pit::binding::guarded<fn>)

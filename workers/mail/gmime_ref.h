// What the mail worker's GMime users share: an owning GObject reference and one-time setup.
// Included only by the .cpp files that parse or build messages (GMime's headers are heavy).
#pragma once

#include <gmime/gmime.h>

namespace coop::mail {

// Owns one reference to a GObject.
template <typename T>
class GRef {
 public:
  explicit GRef(T* object) : object_(object) {}
  ~GRef() {
    if (object_) g_object_unref(object_);
  }
  GRef(const GRef&) = delete;
  GRef& operator=(const GRef&) = delete;
  T* get() const { return object_; }
  explicit operator bool() const { return object_ != nullptr; }

 private:
  T* object_;
};

// g_mime_init, once a process, from any thread.
void ensure_gmime_initialized();

}  // namespace coop::mail

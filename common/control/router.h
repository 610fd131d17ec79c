// The control API routes with the common HTTP router.
#pragma once

#include "common/control/http.h"
#include "common/http/router.h"

namespace coop::control {
using http::AsyncHandler;
using http::Handler;
using http::Reply;
using http::Router;
using http::Runner;
}  // namespace coop::control

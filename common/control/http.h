// The control API speaks the common HTTP request and response types.
#pragma once

#include "common/http/message.h"

namespace coop::control {
using http::parse_target;
using http::Request;
using http::Response;
}  // namespace coop::control

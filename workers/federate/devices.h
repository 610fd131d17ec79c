// End-to-end encryption across servers (Server-Server API "End-to-End Encryption" and "Device
// Management"): other servers query and claim our users' keys and read their device lists,
// and our members' clients do the same of other servers' users. The keys live in coop-room's
// e2ee.db; coop-federate checks who asks and passes the question on.
#pragma once

#include "common/http/router.h"

namespace coop::federate {

struct Context;

void add_device_routes(http::Router& federation, http::Router& control, Context& c, const http::Runner& run);

}  // namespace coop::federate

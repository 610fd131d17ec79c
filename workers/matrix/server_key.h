// The shard's Matrix signing key, which coop-room signs events with and coop-federate publishes
// and signs requests with: keys/matrix_signing.key, "ed25519 <key id> <seed>", 0600.
#pragma once

#include "workers/matrix/signing.h"

namespace coop {
class Home;
}

namespace coop::matrix {

// Reads the key, or makes it the first time. Both workers may start at once: the file is
// created exclusively, and the one that loses the race reads the winner's.
SigningKey load_or_make_server_key(const Home& home);

}  // namespace coop::matrix

// Every setting a member's clients need, in one place: mail (IMAP and submission, with TLS
// mode and login), CalDAV and CardDAV, the Matrix homeserver, the map's embed snippet and
// the documents editor. `coop member settings` prints it; the member portal shows it. URLs
// are the workers' public_urls, else their listeners in coop.toml.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace coop {

class Config;

// handle: the member; emails: their addresses (the first is what mail clients are set up
// with); maps: names of the shard's tile archives (the first gets an embed snippet).
nlohmann::json client_settings(const Config& config, const std::string& handle, const std::vector<std::string>& emails,
                               const std::vector<std::string>& maps);

// The names of the shard's maps (COOP_HOME/tiles/NAME.mbtiles), sorted; none when there is
// no tiles folder.
std::vector<std::string> tile_archive_names(const std::filesystem::path& home_root);

// Where a worker's HTTP listener is reached by members: [workers.NAME] public_url, else its
// listener called `listener` in coop.toml ("http://127.0.0.1:8409"); empty when it has none.
std::string public_base_url(const Config& config, const std::string& worker, const std::string& listener);

}  // namespace coop

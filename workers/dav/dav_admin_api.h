// coop-dav's control API for `coop dav`: calendars and address books, sharing, import, export.
#pragma once

namespace coop {
class WorkerRuntime;
}

namespace coop::dav {

class DavStore;

void add_dav_admin_routes(WorkerRuntime& runtime, DavStore& store);

}  // namespace coop::dav

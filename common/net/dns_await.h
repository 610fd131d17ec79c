// DNS questions to co_await in Asio coroutines (SPF, MX lookups). Only the few .cpp files
// that run coroutines include this: it brings in Asio's awaitable machinery.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <string>

#include "common/net/dns.h"

namespace coop::net {

struct DnsInitiation {
  DnsResolver* dns;
  template <typename Handler>
  void operator()(Handler handler, const std::string& name, int type) const {
    auto h = std::make_shared<Handler>(std::move(handler));
    dns->query(name, type, [h](DnsAnswer a) { (*h)(std::move(a)); });
  }
};

// Not a coroutine itself, and no lambda temporary in the caller's co_await expression:
// GCC 12 destroys such temporaries twice.
inline boost::asio::awaitable<DnsAnswer> ask(DnsResolver& dns, const std::string& name, int type) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(DnsAnswer)>(
      DnsInitiation{&dns}, boost::asio::use_awaitable, name, type);
}

}  // namespace coop::net

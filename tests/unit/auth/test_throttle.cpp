// Login throttling: sliding windows per member and address, backoff, memory bounds, threads.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "common/auth/throttle.h"
#include "common/error.h"

using coop::auth::Throttle;
using coop::auth::ThrottleLimits;
using namespace std::chrono_literals;

namespace {

// A clock the test moves by hand.
struct FakeClock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
  Throttle::Clock clock() {
    return [this] { return now; };
  }
};

// Failures for one member, each from its own address and one second apart.
void fail_member(Throttle& throttle, FakeClock& time, std::string_view member, int count) {
  for (int i = 0; i < count; ++i) {
    throttle.record_failure(member, "192.0.2." + std::to_string(i));
    time.now += 1s;
  }
  time.now -= 1s;
}

}  // namespace

TEST_CASE("a member is locked after ten failures until the oldest leaves the window") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  fail_member(throttle, time, "alice", 9);
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 0ms);
  time.now += 1s;
  throttle.record_failure("alice", "192.0.2.99");
  // The first failure was 9 s ago, so it leaves the 900 s window in 891 s.
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 891s);
  CHECK(throttle.retry_after("bob", "198.51.100.1") == 0ms);
  time.now += 890s;
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 1s);
  time.now += 1s;
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 0ms);
}

TEST_CASE("an address is locked after thirty failures across many members") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  for (int i = 0; i < 29; ++i) {
    throttle.record_failure("member" + std::to_string(i), "203.0.113.7");
  }
  CHECK(throttle.retry_after("someone", "203.0.113.7") == 0ms);
  throttle.record_failure("member29", "203.0.113.7");
  CHECK(throttle.retry_after("someone", "203.0.113.7") == 900s);
  CHECK(throttle.retry_after("someone", "203.0.113.8") == 0ms);
}

TEST_CASE("retry_after reports the longer of the member and address waits") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  fail_member(throttle, time, "alice", 10);
  for (int i = 0; i < 30; ++i) throttle.record_failure("m" + std::to_string(i), "203.0.113.7");
  CHECK(throttle.retry_after("alice", "203.0.113.7") == 900s);
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 891s);
}

TEST_CASE("failures older than the window no longer count") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  fail_member(throttle, time, "alice", 9);
  time.now += 900s;
  fail_member(throttle, time, "alice", 9);
  CHECK(throttle.retry_after("alice", "") == 0ms);
  time.now += 1s;
  throttle.record_failure("alice", "");
  CHECK(throttle.retry_after("alice", "") > 0ms);
}

TEST_CASE("a success clears the member's failures but not the address's") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  for (int i = 0; i < 30; ++i) throttle.record_failure("alice", "203.0.113.7");
  CHECK(throttle.retry_after("alice", "198.51.100.1") > 0ms);
  throttle.record_success("alice", "203.0.113.7");
  CHECK(throttle.retry_after("alice", "198.51.100.1") == 0ms);
  CHECK(throttle.retry_after("bob", "203.0.113.7") > 0ms);

  // The count starts again from zero after a success.
  fail_member(throttle, time, "carol", 9);
  throttle.record_success("carol", "");
  throttle.record_failure("carol", "");
  CHECK(throttle.retry_after("carol", "") == 0ms);
}

TEST_CASE("empty member or address strings are not tracked") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  for (int i = 0; i < 100; ++i) throttle.record_failure("", "");
  CHECK(throttle.tracked_keys() == 0);
  CHECK(throttle.retry_after("", "") == 0ms);

  for (int i = 0; i < 10; ++i) throttle.record_failure("alice", "");
  CHECK(throttle.tracked_keys() == 1);
  CHECK(throttle.retry_after("alice", "") > 0ms);
  CHECK(throttle.retry_after("", "203.0.113.7") == 0ms);
}

TEST_CASE("repeated lockouts back off exponentially up to max_lockout") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  // A guesser at the average rate the limit allows (one per window / limit = 90 s) who then
  // fails again as soon as each lockout ends, as many times as the window still permits.
  for (int i = 0; i < 9; ++i) {
    throttle.record_failure("alice", "");
    time.now += 90s;
  }
  std::vector<std::chrono::milliseconds> lockouts;
  while (lockouts.size() < 7) {
    time.now += throttle.retry_after("alice", "");
    throttle.record_failure("alice", "");
    const auto wait = throttle.retry_after("alice", "");
    if (wait > 0ms) lockouts.push_back(wait);
  }
  using V = std::vector<std::chrono::milliseconds>;
  CHECK(lockouts == V{90s, 180s, 360s, 720s, 900s, 900s, 900s});
}

TEST_CASE("a guesser never gets more failures in a window than the limit") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  std::vector<std::chrono::steady_clock::time_point> failures;
  const auto start = time.now;
  while (time.now - start < 10h) {
    time.now += throttle.retry_after("alice", "") + 7s;
    if (throttle.retry_after("alice", "") > 0ms) continue;
    throttle.record_failure("alice", "");
    failures.push_back(time.now);
  }
  for (std::size_t i = 10; i < failures.size(); ++i) {
    CHECK(failures[i] - failures[i - 10] >= 900s);
  }
  CHECK(failures.size() <= 10 * (10h / 900s + 1));
}

TEST_CASE("a key forgets its lockouts once its failures have left the window") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  fail_member(throttle, time, "alice", 10);
  time.now += throttle.retry_after("alice", "");
  throttle.record_failure("alice", "");
  CHECK(throttle.retry_after("alice", "") == 180s);
  time.now += 900s;
  fail_member(throttle, time, "alice", 9);
  CHECK(throttle.retry_after("alice", "") == 0ms);
  time.now += 1s;
  throttle.record_failure("alice", "");
  CHECK(throttle.retry_after("alice", "") == 891s);
}

TEST_CASE("max_lockout caps a lockout shorter than the window") {
  FakeClock time;
  ThrottleLimits limits;
  limits.max_lockout = 60s;
  Throttle throttle(limits, time.clock());
  fail_member(throttle, time, "alice", 10);
  CHECK(throttle.retry_after("alice", "") == 60s);
}

TEST_CASE("retry_after rounds up to whole milliseconds") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  for (int i = 0; i < 10; ++i) throttle.record_failure("alice", "");
  time.now += 900s - 1ns;
  CHECK(throttle.retry_after("alice", "") == 1ms);
  time.now += 1ns;
  CHECK(throttle.retry_after("alice", "") == 0ms);
}

TEST_CASE("a zero limit disables that key") {
  FakeClock time;
  ThrottleLimits limits;
  limits.address_failures = 0;
  Throttle throttle(limits, time.clock());
  for (int i = 0; i < 100; ++i) throttle.record_failure("m" + std::to_string(i), "203.0.113.7");
  CHECK(throttle.retry_after("someone", "203.0.113.7") == 0ms);
  CHECK(throttle.tracked_keys() == 100);
}

TEST_CASE("a non-positive window is refused") {
  ThrottleLimits limits;
  limits.window = 0s;
  CHECK_THROWS_AS(Throttle(limits), coop::Error);
}

TEST_CASE("expired keys are pruned as new failures arrive") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  for (int i = 0; i < 1000; ++i) throttle.record_failure("", "10.0." + std::to_string(i));
  CHECK(throttle.tracked_keys() == 1000);
  time.now += 900s;
  throttle.record_failure("", "10.1.0.0");
  CHECK(throttle.tracked_keys() == 1);
}

TEST_CASE("a flood of addresses keeps the number of tracked keys bounded") {
  FakeClock time;
  ThrottleLimits limits;
  limits.max_keys = 100;
  Throttle throttle(limits, time.clock());
  for (int i = 0; i < 30; ++i) throttle.record_failure("", "203.0.113.7");
  CHECK(throttle.retry_after("", "203.0.113.7") > 0ms);
  for (int i = 0; i < 10000; ++i) {
    throttle.record_failure("", "10." + std::to_string(i));
    REQUIRE(throttle.tracked_keys() <= 100);
  }
  // The least recently failed key was dropped to make room; the newest are still counted.
  CHECK(throttle.retry_after("", "203.0.113.7") == 0ms);
  for (int i = 0; i < 29; ++i) throttle.record_failure("", "10.9999");
  CHECK(throttle.retry_after("", "10.9999") > 0ms);
}

TEST_CASE("a flood of addresses does not push members out") {
  FakeClock time;
  ThrottleLimits limits;
  limits.max_keys = 100;
  Throttle throttle(limits, time.clock());
  for (int i = 0; i < 10; ++i) throttle.record_failure("alice", "");
  for (int i = 0; i < 10000; ++i) throttle.record_failure("", "10." + std::to_string(i));
  CHECK(throttle.retry_after("alice", "") > 0ms);
}

TEST_CASE("very long member names share a bounded key") {
  FakeClock time;
  Throttle throttle({}, time.clock());
  const std::string prefix(300, 'x');
  for (int i = 0; i < 10; ++i) throttle.record_failure(prefix + std::to_string(i), "");
  CHECK(throttle.tracked_keys() == 1);
  CHECK(throttle.retry_after(prefix + "other", "") > 0ms);
}

TEST_CASE("failures recorded from many threads are all counted") {
  FakeClock time;
  ThrottleLimits limits;
  limits.member_failures = 400;
  limits.address_failures = 400;
  Throttle throttle(limits, time.clock());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&throttle, t] {
      for (int i = 0; i < 100; ++i) {
        throttle.record_failure("alice", "203.0.113." + std::to_string(t));
        throttle.record_failure("bob" + std::to_string(t), "203.0.113.200");
        (void)throttle.retry_after("alice", "203.0.113.200");
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(throttle.retry_after("alice", "") > 0ms);
  CHECK(throttle.retry_after("", "203.0.113.200") > 0ms);
  CHECK(throttle.tracked_keys() == 1 + 4 + 4 + 1);
}

// A job many events ask for but one run answers: requests made while it runs lead to one more
// run, not one each (a bulk import's 10,000 member events refresh a directory twice, not
// 10,000 times).
#pragma once

#include <functional>
#include <mutex>

#include <spdlog/spdlog.h>

namespace coop {

class CoalescedJob {
 public:
  using Runner = std::function<void(std::function<void()>)>;

  // run places the job on a pool; the job must outlive nothing but this object, which must
  // outlive the runs it started.
  CoalescedJob(Runner run, std::function<void()> job) : run_(std::move(run)), job_(std::move(job)) {}

  void request() {
    {
      std::lock_guard lock(mutex_);
      if (running_) {
        again_ = true;
        return;
      }
      running_ = true;
    }
    run_([this] {
      while (true) {
        try {
          job_();
        } catch (const std::exception& e) {
          spdlog::warn("{}", e.what());
        }
        std::lock_guard lock(mutex_);
        if (!again_) {
          running_ = false;
          return;
        }
        again_ = false;
      }
    });
  }

 private:
  Runner run_;
  std::function<void()> job_;
  std::mutex mutex_;  // guards running_ and again_
  bool running_ = false, again_ = false;
};

}  // namespace coop

#include "watch/settle_tracker.hpp"

namespace modeldrop::watch {

SettleTracker::Verdict SettleTracker::observe(const std::string& path, const FileState& state, Activity activity,
                                              Duration settle, TimePoint now) {
  auto [it, inserted] = files_.try_emplace(path);
  Pending& pending = it->second;
  if (activity == Activity::seen && !inserted && pending.state == state && pending.settle == settle &&
      pending.slot.has_value()) {
    return Verdict::settling;
  }
  pending.state = state;
  pending.settle = settle;
  pending.writing = activity == Activity::written;
  if (activity == Activity::renamed) {
    forget(path);
    return Verdict::ready;
  }
  if (settle == Duration::zero()) {
    if (pending.writing) {
      unschedule(pending);
      return Verdict::waiting_for_close;
    }
    forget(path);
    return Verdict::ready;
  }
  return schedule(path, pending, now + settle);
}

std::optional<SettleTracker::TimePoint> SettleTracker::next_deadline() const {
  if (schedule_.empty()) return std::nullopt;
  return schedule_.begin()->first;
}

std::vector<std::string> SettleTracker::take_due(TimePoint now) {
  std::vector<std::string> due;
  while (!schedule_.empty() && schedule_.begin()->first <= now) {
    auto slot = schedule_.begin();
    auto it = files_.find(slot->second);
    if (it != files_.end()) it->second.slot.reset();
    due.push_back(std::move(slot->second));
    schedule_.erase(slot);
  }
  return due;
}

SettleTracker::Verdict SettleTracker::recheck(const std::string& path, const FileState& state, TimePoint now) {
  auto it = files_.find(path);
  if (it == files_.end()) return Verdict::not_tracked;
  Pending& pending = it->second;
  if (pending.state == state) {
    forget(path);
    return Verdict::ready;
  }
  pending.state = state;
  return schedule(path, pending, now + pending.settle);
}

void SettleTracker::forget(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) return;
  unschedule(it->second);
  files_.erase(it);
}

SettleTracker::Verdict SettleTracker::schedule(const std::string& path, Pending& pending, TimePoint deadline) {
  unschedule(pending);
  pending.slot = schedule_.emplace(deadline, path);
  return Verdict::settling;
}

void SettleTracker::unschedule(Pending& pending) {
  if (!pending.slot) return;
  schedule_.erase(*pending.slot);
  pending.slot.reset();
}

}  // namespace modeldrop::watch

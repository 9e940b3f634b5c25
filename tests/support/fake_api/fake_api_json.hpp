#pragma once

// JSON for the fake's control API (/_fake/...): the same field names as the structs in
// fake_api.hpp, durations in milliseconds, FaultKind by its enumerator name.

#include "common/error.hpp"
#include "support/fake_api/fake_api.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::test {

std::string_view fault_kind_name(FaultKind kind);
std::optional<FaultKind> fault_kind_from_name(std::string_view name);

std::string fault_to_json(const Fault& fault);
std::string faults_to_json(const std::vector<Fault>& faults);
// A JSON array of faults, or one fault object. Missing fields keep the struct's defaults.
Result<std::vector<Fault>> faults_from_json(std::string_view text);
Result<Fault> fault_from_json(std::string_view text);
// {"probability": 0.3, "seed": 7, "faults": [...]}; probability must be within 0..1.
Result<FaultMix> fault_mix_from_json(std::string_view text);
std::string fault_mix_to_json(const FaultMix& mix);

std::string received_files_to_json(const std::vector<ReceivedFile>& files);
Result<std::vector<ReceivedFile>> received_files_from_json(std::string_view text);

// The authorization header itself is never written out: only whether there was one.
std::string request_records_to_json(const std::vector<RequestRecord>& records);

// {"validate_for": ms, "status": "active" | "error", "reason": "..."}; missing fields keep the defaults.
Result<ModelBehaviour> model_behaviour_from_json(std::string_view text);
// The models as the fake keeps them, with their status now (GET /_fake/models).
std::string fake_models_to_json(const std::vector<FakeModel>& models);

// The API's own answer for a stored file (OpenAPI `OpenAIFile`).
std::string openai_file_json(const ReceivedFile& file);

}  // namespace modeldrop::test

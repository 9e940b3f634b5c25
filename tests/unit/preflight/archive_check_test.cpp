#include "preflight/archive_check.hpp"
#include "support/archive_corpus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace modeldrop::preflight {
namespace {

using test::ArchiveCase;

// Yields `bytes` in blocks of at most `chunk`, counting what it hands out.
struct StringReader {
  const std::string& bytes;
  std::size_t chunk;
  std::size_t position = 0;

  Result<std::size_t> operator()(std::span<std::byte> into) {
    const std::size_t count = std::min({into.size(), chunk, bytes.size() - position});
    std::memcpy(into.data(), bytes.data() + position, count);
    position += count;
    return count;
  }
};

CheckVerdict check(const ArchiveCase& archive, std::size_t chunk = 1 << 20, std::size_t* consumed = nullptr) {
  StringReader reader{archive.bytes, chunk};
  auto verdict = check_archive(*parse_archive_validation(archive.validate), archive_kind_of(archive.file_name),
                               [&](std::span<std::byte> into) { return reader(into); });
  EXPECT_TRUE(verdict.has_value()) << archive.file_name;
  if (consumed != nullptr) *consumed = reader.position;
  return verdict ? *verdict : CheckVerdict{"read error"};
}

TEST(ArchiveCheck, EveryBrokenArchiveFailsWithItsProblem) {
  for (const auto& archive : test::broken_archive_cases()) {
    const auto verdict = check(archive);
    EXPECT_EQ(verdict.problem, archive.problem) << archive.file_name;
  }
}

TEST(ArchiveCheck, GoodArchivesOfEveryKindPass) {
  for (const auto& archive : test::good_archive_cases()) {
    std::size_t consumed = 0;
    EXPECT_EQ(check(archive, 1 << 20, &consumed).problem, std::nullopt) << archive.file_name;
    if (archive_kind_of(archive.file_name) != ArchiveKind::not_an_archive) {
      EXPECT_EQ(consumed, archive.bytes.size()) << archive.file_name << ": a passed check read the whole file";
    }
  }
}

TEST(ArchiveCheck, AdapterLayouts) {
  for (const auto& archive : test::adapter_cases()) {
    EXPECT_EQ(check(archive).problem, archive.problem) << archive.file_name;
  }
}

// The verdict does not depend on how the file's reads are cut up.
TEST(ArchiveCheck, SameVerdictsWithSmallOddReads) {
  auto cases = test::broken_archive_cases();
  for (auto& good : test::good_archive_cases()) cases.push_back(std::move(good));
  for (const auto& archive : cases) {
    if (archive.bytes.size() > 4 * 1024 * 1024) continue;
    EXPECT_EQ(check(archive, 1000).problem, archive.problem) << archive.file_name;
  }
}

}  // namespace
}  // namespace modeldrop::preflight

namespace modeldrop::preflight {
namespace {

// The default allowance is 1 GiB before the ratio counts; a smaller one keeps the test quick.
TEST(ArchiveCheck, ExpansionFarBeyondTheFileFails) {
  const std::string bomb =
      test::make_archive(test::ArchiveFormat::tar_gz, {{"zeros.bin", std::string(8u << 20, '\0')}});
  StringReader reader{bomb, 1 << 20};
  CheckLimits limits;
  limits.expansion_allowance = 1 << 20;
  auto verdict = check_archive(
      ArchiveValidation::archive, ArchiveKind::tar_gz, [&](std::span<std::byte> into) { return reader(into); }, limits);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->problem, R"(archive expands more than 100-fold (at member "zeros.bin"))");
  limits.expansion_allowance = 16 << 20;
  reader.position = 0;
  verdict = check_archive(
      ArchiveValidation::archive, ArchiveKind::tar_gz, [&](std::span<std::byte> into) { return reader(into); }, limits);
  EXPECT_TRUE(verdict->passed());
}

TEST(ArchiveCheck, ReadFailureIsAnErrorNotAVerdict) {
  const auto archive = test::good_archive_cases().front();
  StringReader reader{archive.bytes, 4096};
  auto result = check_archive(ArchiveValidation::archive, ArchiveKind::zip,
                              [&](std::span<std::byte> into) -> Result<std::size_t> {
                                if (reader.position > 100 * 1024)
                                  return make_error("reading good.zip: Input/output error");
                                return reader(into);
                              });
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message, "reading good.zip: Input/output error");
}

TEST(ArchiveCheck, ValidationNamesAndKinds) {
  EXPECT_EQ(parse_archive_validation("adapter"), ArchiveValidation::adapter);
  EXPECT_EQ(parse_archive_validation("Archive"), std::nullopt);
  EXPECT_EQ(to_string(ArchiveValidation::none), "none");
  EXPECT_EQ(archive_kind_of("a.ZIP"), ArchiveKind::zip);
  EXPECT_EQ(archive_kind_of("a.tar"), ArchiveKind::tar);
  EXPECT_EQ(archive_kind_of("a.Tgz"), ArchiveKind::tar_gz);
  EXPECT_EQ(archive_kind_of("a.tar.gz"), ArchiveKind::tar_gz);
  EXPECT_EQ(archive_kind_of(".zip"), ArchiveKind::not_an_archive);
  EXPECT_EQ(archive_kind_of("a.gz"), ArchiveKind::not_an_archive);
}

TEST(ArchiveCheck, NoneAndUncheckedNamesReadNothing) {
  std::size_t reads = 0;
  const ReadNext counting = [&](std::span<std::byte>) -> Result<std::size_t> {
    ++reads;
    return 0;
  };
  EXPECT_TRUE(check_archive(ArchiveValidation::none, ArchiveKind::zip, counting)->passed());
  EXPECT_TRUE(check_archive(ArchiveValidation::archive, ArchiveKind::not_an_archive, counting)->passed());
  EXPECT_EQ(reads, 0u);
}

}  // namespace
}  // namespace modeldrop::preflight

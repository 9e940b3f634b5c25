// The request's bytes in wire order, filled in large pieces from one descriptor.
#include "upload/request_body.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <random>

namespace modeldrop::upload {
namespace {

using test::TempDir;

struct Built {
  std::string bytes;
  std::optional<FileProblem> problem;
};

Built drain(UploadRequestBytes& request, std::size_t chunk) {
  Built built;
  std::vector<std::byte> buffer(chunk);
  for (int i = 0; i < 1'000'000; ++i) {
    auto n = request.fill(buffer);
    if (!n) {
      built.problem = n.error();
      break;
    }
    if (*n == 0) break;
    built.bytes.append(reinterpret_cast<const char*>(buffer.data()), *n);
  }
  return built;
}

std::string random_content(std::size_t size) {
  std::mt19937 rng(7);
  std::string content(size, '\0');
  for (auto& c : content) c = static_cast<char>(rng() & 0xFFU);
  return content;
}

TEST(UploadRequestBytes, HeadPreambleFileEpilogueInOrderWhateverTheChunkSize) {
  TempDir dir;
  const std::string content = random_content(100'003);
  const auto path = dir.write("m.zip", content);
  const auto framing = make_multipart_framing("m.zip", "B");
  for (const std::size_t chunk : {1UL, 7UL, 4096UL, 65536UL, 1UL << 20U}) {
    auto file = SourceFile::open(path, *identify_file(path));
    ASSERT_TRUE(file);
    UploadRequestBytes request("HEAD\r\n\r\n", framing, std::move(*file), true);
    EXPECT_EQ(request.body_size(), framing.content_length(content.size()));
    EXPECT_EQ(request.total_size(), 8 + request.body_size());
    const Built built = drain(request, chunk);
    ASSERT_FALSE(built.problem) << built.problem->message;
    EXPECT_EQ(built.bytes, "HEAD\r\n\r\n" + framing.preamble + content + framing.epilogue) << "chunk " << chunk;
    EXPECT_EQ(built.bytes.size(), request.total_size());
  }
}

TEST(UploadRequestBytes, Sha256OfTheContentOnceComplete) {
  TempDir dir;
  const auto path = dir.write("m.zip", "abc");
  auto file = SourceFile::open(path, *identify_file(path));
  ASSERT_TRUE(file);
  UploadRequestBytes request("H", make_multipart_framing("m.zip", "B"), std::move(*file), true);
  EXPECT_FALSE(request.sha256()) << "not before the whole file was read";
  drain(request, 2);
  EXPECT_EQ(request.sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(request.sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") << "stable";
}

TEST(UploadRequestBytes, NoHashWhenNotAskedAndEmptyFileWorks) {
  TempDir dir;
  const auto path = dir.write("empty.tar", "");
  auto file = SourceFile::open(path, *identify_file(path));
  ASSERT_TRUE(file);
  const auto framing = make_multipart_framing("empty.tar", "B");
  UploadRequestBytes request("H", framing, std::move(*file), false);
  const Built built = drain(request, 1024);
  EXPECT_EQ(built.bytes, "H" + framing.preamble + framing.epilogue);
  EXPECT_FALSE(request.sha256());
}

TEST(UploadRequestBytes, FileBytesWithinCountsOnlyContent) {
  TempDir dir;
  const auto path = dir.write("m.zip", "0123456789");
  auto file = SourceFile::open(path, *identify_file(path));
  ASSERT_TRUE(file);
  const auto framing = make_multipart_framing("m.zip", "B");
  UploadRequestBytes request("HEAD", framing, std::move(*file), false);
  const std::uint64_t file_start = 4 + framing.preamble.size();
  EXPECT_EQ(request.file_bytes_within(0), 0U);
  EXPECT_EQ(request.file_bytes_within(file_start), 0U);
  EXPECT_EQ(request.file_bytes_within(file_start + 3), 3U);
  EXPECT_EQ(request.file_bytes_within(request.total_size()), 10U);
}

TEST(UploadRequestBytes, ShrunkFileIsAProblemNotAShortBody) {
  TempDir dir;
  const auto path = dir.write("m.zip", std::string(1000, 'x'));
  auto file = SourceFile::open(path, *identify_file(path));
  ASSERT_TRUE(file);
  std::filesystem::resize_file(path, 10);
  UploadRequestBytes request("H", make_multipart_framing("m.zip", "B"), std::move(*file), false);
  const Built built = drain(request, 64);
  ASSERT_TRUE(built.problem);
  EXPECT_EQ(built.problem->error, AttemptError::file_changed);
}

}  // namespace
}  // namespace modeldrop::upload

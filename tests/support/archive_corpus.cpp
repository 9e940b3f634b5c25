#include "support/archive_corpus.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

namespace modeldrop::test {

namespace {

la_ssize_t append_to_string(struct archive* /*writer*/, void* client, const void* buffer, std::size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

void must(int status, struct archive* writer) {
  if (status < ARCHIVE_WARN) throw std::runtime_error(std::string("libarchive: ") + archive_error_string(writer));
}

void set_format(struct archive* writer, ArchiveFormat format) {
  switch (format) {
    case ArchiveFormat::zip_deflated:
      must(archive_write_set_format_zip(writer), writer);
      break;
    case ArchiveFormat::zip_stored:
      must(archive_write_set_format_zip(writer), writer);
      must(archive_write_set_options(writer, "zip:compression=store"), writer);
      break;
    case ArchiveFormat::tar:
      must(archive_write_set_format_ustar(writer), writer);
      break;
    case ArchiveFormat::tar_gz:
      must(archive_write_set_format_ustar(writer), writer);
      must(archive_write_add_filter_gzip(writer), writer);
      break;
  }
}

// Incompressible, reproducible bytes (xorshift64).
std::string noise(std::size_t size, std::uint64_t seed) {
  std::string bytes(size, '\0');
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (auto& byte : bytes) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    byte = static_cast<char>(state >> 56);
  }
  return bytes;
}

std::string words(std::size_t size) {
  std::string text;
  while (text.size() < size) text += "a model archive line of text, compressible " + std::to_string(text.size()) + "\n";
  return text.substr(0, size);
}

std::uint32_t read_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i)
    value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return value;
}

// Where a zip's central directory starts, from its end record (no comment: the last 22 bytes).
std::size_t central_directory_offset(const std::string& zip) {
  return read_u32(zip, zip.size() - 22 + 16);
}

std::uint16_t read_u16(const std::string& bytes, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[at]) | static_cast<unsigned char>(bytes[at + 1])
                                                                                << 8);
}

// Where a member's data starts in a zip: past its local header, name and extra field.
std::size_t zip_member_data(const std::string& zip, const std::string& name) {
  const std::size_t header = zip.find(name) - 30;
  return header + 30 + read_u16(zip, header + 26) + read_u16(zip, header + 28);
}

std::string flipped(std::string bytes, std::size_t at) {
  bytes.at(at) = static_cast<char>(bytes.at(at) ^ 0x5A);
  return bytes;
}

std::string cut(const std::string& bytes, std::size_t size) {
  return bytes.substr(0, size);
}

// config.json (small text), weights.bin (300 KiB of noise, several read blocks) and readme.txt
// (compressible text), in a folder.
std::vector<ArchiveMember> model_members() {
  return {{"model/", ""},
          {"model/config.json", R"({"architectures": ["Example"], "hidden_size": 64})"},
          {"model/weights.bin", noise(300 * 1024, 1)},
          {"model/readme.txt", words(50 * 1024)}};
}

constexpr std::size_t tar_block = 512;

// The offset just past the last member's data in a ustar made by make_archive.
std::size_t tar_data_end(const std::vector<ArchiveMember>& members) {
  std::size_t end = 0;
  for (const auto& member : members) end += tar_block + (member.content.size() + tar_block - 1) / tar_block * tar_block;
  return end;
}

ArchiveCase broken(std::string file_name, std::string bytes, std::string problem) {
  return {std::move(file_name), std::move(bytes), "archive", std::move(problem)};
}

void add_zip_cases(std::vector<ArchiveCase>& cases) {
  const auto members = model_members();
  const std::string zip = make_archive(ArchiveFormat::zip_deflated, members);
  const std::string stored = make_archive(ArchiveFormat::zip_stored, members);
  const std::size_t directory = central_directory_offset(zip);
  const std::size_t weights_data = zip_member_data(zip, "model/weights.bin");
  cases.push_back(broken("empty.zip", "", "empty file"));
  cases.push_back(broken("cut-in-first-header.zip", cut(zip, 20), "truncated zip archive"));
  cases.push_back(broken("cut-in-data.zip", cut(zip, weights_data + 100 * 1024), "truncated zip archive"));
  cases.push_back(broken("cut-in-directory.zip", cut(zip, directory + 60), "truncated zip central directory"));
  cases.push_back(broken("cut-in-end-record.zip", cut(zip, zip.size() - 5), "truncated zip central directory"));
  cases.push_back(broken("no-central-directory.zip", cut(zip, directory), "zip central directory missing"));
  cases.push_back(broken("flipped-in-stored-data.zip",
                         flipped(stored, zip_member_data(stored, "model/weights.bin") + 5000),
                         R"(damaged data in member "model/weights.bin")"));
  cases.push_back(broken("flipped-in-deflated-data.zip", flipped(zip, weights_data + 5000),
                         R"(CRC mismatch in member "model/weights.bin")"));
  cases.push_back(broken("flipped-in-local-header.zip", flipped(zip, zip.find("model/readme.txt")),
                         R"(zip central directory does not match member "7odel/readme.txt")"));
  cases.push_back(broken("flipped-in-directory.zip", flipped(zip, zip.rfind("model/readme.txt") + 2),
                         R"(zip central directory does not match member "model/readme.txt")"));
  std::vector<ArchiveMember> many;
  for (int i = 0; i <= 10'000; ++i) many.push_back({"m" + std::to_string(i), ""});
  cases.push_back(
      broken("too-many-members.zip", make_archive(ArchiveFormat::zip_stored, many), "more than 10000 members"));
  cases.push_back(broken("tar-named.zip", make_archive(ArchiveFormat::tar, members), "not a zip archive"));
}

void add_tar_cases(std::vector<ArchiveCase>& cases) {
  const auto members = model_members();
  const std::string tar = make_archive(ArchiveFormat::tar, members);
  const std::size_t weights_header = 2 * tar_block + tar_block;  // after "model/" and config.json
  cases.push_back(broken("empty.tar", "", "empty file"));
  cases.push_back(broken("cut-in-first-header.tar", cut(tar, 100), "truncated tar archive"));
  cases.push_back(
      broken("cut-in-data.tar", cut(tar, weights_header + tar_block + 100 * 1024), "truncated tar archive"));
  cases.push_back(broken("no-end-marker.tar", cut(tar, tar_data_end(members)), "tar end-of-archive marker missing"));
  cases.push_back(broken("flipped-in-header.tar", flipped(tar, weights_header + 3), "damaged tar header"));
  cases.push_back(broken("zip-named.tar", make_archive(ArchiveFormat::zip_deflated, members), "not a tar archive"));
}

void add_tar_gz_cases(std::vector<ArchiveCase>& cases) {
  const auto members = model_members();
  const std::string tar_gz = make_archive(ArchiveFormat::tar_gz, members);
  const std::size_t size = tar_gz.size();
  cases.push_back(broken("empty.tar.gz", "", "empty file"));
  cases.push_back(broken("cut-in-gzip-header.tar.gz", cut(tar_gz, 5), "truncated gzip stream"));
  cases.push_back(broken("cut-in-middle.tgz", cut(tar_gz, size / 2), "truncated gzip stream"));
  cases.push_back(broken("cut-in-trailer.tar.gz", cut(tar_gz, size - 4), "truncated gzip stream"));
  cases.push_back(broken("bad-crc.tar.gz", flipped(tar_gz, size - 6), "gzip CRC mismatch"));
  cases.push_back(broken("bad-length.tar.gz", flipped(tar_gz, size - 2), "gzip length mismatch"));
  cases.push_back(broken("flipped-in-data.tar.gz", flipped(tar_gz, size / 2), "gzip CRC mismatch"));
  cases.push_back(broken("flipped-in-deflate-header.tar.gz", flipped(tar_gz, 10), "corrupt gzip data"));
  cases.push_back(broken("tar-named.tar.gz", make_archive(ArchiveFormat::tar, members), "not a gzip stream"));
}

}  // namespace

std::string make_archive(ArchiveFormat format, const std::vector<ArchiveMember>& members) {
  std::string bytes;
  std::unique_ptr<struct archive, decltype(&archive_write_free)> writer(archive_write_new(), &archive_write_free);
  set_format(writer.get(), format);
  must(archive_write_set_bytes_in_last_block(writer.get(), 1), writer.get());  // no padding after the end
  must(archive_write_open(writer.get(), &bytes, nullptr, append_to_string, nullptr), writer.get());
  for (const auto& member : members) {
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                               &archive_entry_free);
    const bool directory = !member.name.empty() && member.name.back() == '/';
    archive_entry_set_pathname(entry.get(), member.name.c_str());
    archive_entry_set_filetype(entry.get(), directory ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(entry.get(), directory ? 0755 : 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(member.content.size()));
    archive_entry_set_mtime(entry.get(), 1'700'000'000, 0);
    must(archive_write_header(writer.get(), entry.get()), writer.get());
    if (!member.content.empty()) {
      const auto written = archive_write_data(writer.get(), member.content.data(), member.content.size());
      if (written != static_cast<la_ssize_t>(member.content.size())) must(ARCHIVE_FATAL, writer.get());
    }
  }
  must(archive_write_close(writer.get()), writer.get());
  return bytes;
}

std::string make_safetensors(int tensors, int values) {
  std::string header = "{";
  const int bytes_each = values * 4;
  for (int i = 0; i < tensors; ++i) {
    header += (i > 0 ? "," : "") + std::string("\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[)" +
              std::to_string(values) + R"(],"data_offsets":[)" + std::to_string(i * bytes_each) + "," +
              std::to_string((i + 1) * bytes_each) + "]}";
  }
  header += "}";
  std::string file(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return file + header + noise(static_cast<std::size_t>(tensors * bytes_each), 7);
}

std::vector<ArchiveCase> broken_archive_cases() {
  std::vector<ArchiveCase> cases;
  add_zip_cases(cases);
  add_tar_cases(cases);
  add_tar_gz_cases(cases);
  return cases;
}

std::vector<ArchiveCase> good_archive_cases() {
  const auto members = model_members();
  return {{"good.zip", make_archive(ArchiveFormat::zip_deflated, members), "archive", std::nullopt},
          {"good-stored.zip", make_archive(ArchiveFormat::zip_stored, members), "archive", std::nullopt},
          {"no-members.zip", make_archive(ArchiveFormat::zip_deflated, {}), "archive", std::nullopt},
          {"good.tar", make_archive(ArchiveFormat::tar, members), "archive", std::nullopt},
          {"no-members.tar", make_archive(ArchiveFormat::tar, {}), "archive", std::nullopt},
          {"good.tar.gz", make_archive(ArchiveFormat::tar_gz, members), "archive", std::nullopt},
          {"GOOD.TGZ", make_archive(ArchiveFormat::tar_gz, members), "archive", std::nullopt},
          {"weights.safetensors", "not an archive, sent unchecked", "archive", std::nullopt}};
}

std::vector<ArchiveCase> adapter_cases() {
  const std::string config = R"({"base_model_name_or_path": "example/base", "r": 8, "peft_type": "LORA"})";
  const std::string weights = make_safetensors(4, 1024);
  const auto zip = [](const std::vector<ArchiveMember>& members) {
    return make_archive(ArchiveFormat::zip_deflated, members);
  };
  const auto adapter = [](std::string name, std::string bytes, std::optional<std::string> problem) {
    return ArchiveCase{std::move(name), std::move(bytes), "adapter", std::move(problem)};
  };
  std::string outside = make_safetensors(2, 16);
  outside.resize(outside.size() - 4);  // the last tensor's end now lies past the file
  std::string cut_header = make_safetensors(2, 16).substr(0, 40);
  return {
      adapter("top-level.zip", zip({{"adapter_config.json", config}, {"adapter_model.safetensors", weights}}),
              std::nullopt),
      adapter("one-folder.zip",
              zip({{"lora/", ""}, {"lora/adapter_config.json", config}, {"lora/adapter_model.safetensors", weights}}),
              std::nullopt),
      adapter("one-folder.tar.gz",
              make_archive(ArchiveFormat::tar_gz,
                           {{"lora/adapter_config.json", config}, {"lora/adapter_model.safetensors", weights}}),
              std::nullopt),
      adapter("two-folders.zip",
              zip({{"a/adapter_config.json", config},
                   {"a/adapter_model.safetensors", weights},
                   {"b/adapter_config.json", config},
                   {"b/adapter_model.safetensors", weights}}),
              R"(adapter files in more than one folder ("a", "b"))"),
      adapter("split.zip", zip({{"adapter_config.json", config}, {"lora/adapter_model.safetensors", weights}}),
              "adapter_config.json and adapter_model.safetensors are not in the same folder"),
      adapter("missing-config.zip", zip({{"adapter_model.safetensors", weights}}), "no adapter_config.json"),
      adapter("missing-weights.tar", make_archive(ArchiveFormat::tar, {{"adapter_config.json", config}}),
              "no adapter_model.safetensors"),
      adapter("too-deep.zip", zip({{"a/b/adapter_config.json", config}, {"a/b/adapter_model.safetensors", weights}}),
              "no adapter_config.json"),
      adapter("bad-json.zip",
              zip({{"lora/adapter_config.json", "{\"r\": 8,"}, {"lora/adapter_model.safetensors", weights}}),
              "lora/adapter_config.json is not valid JSON"),
      adapter("offsets-outside.zip", zip({{"adapter_config.json", config}, {"adapter_model.safetensors", outside}}),
              R"(adapter_model.safetensors: tensor "t1" lies outside the file)"),
      adapter("truncated-header.zip", zip({{"adapter_config.json", config}, {"adapter_model.safetensors", cut_header}}),
              "adapter_model.safetensors: truncated safetensors header"),
      adapter("adapter.safetensors", weights, "not a .zip, .tar, .tar.gz or .tgz file"),
      adapter("broken-adapter.tar.gz",
              cut(make_archive(ArchiveFormat::tar_gz,
                               {{"adapter_config.json", config}, {"adapter_model.safetensors", weights}}),
                  200),
              "truncated gzip stream"),
  };
}

}  // namespace modeldrop::test

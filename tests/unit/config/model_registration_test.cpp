// `register` in a watch entry, the sidecar beside an archive, and the model name they give.
#include "config/model_registration.hpp"
#include "config/config_loader.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace modeldrop::config {
namespace {

LoadResult parse(const std::string& yaml) {
  return parse_config(yaml, "test.yaml", "/etc/modeldrop");
}

// 2026-05-06T12:00:00Z
const WallTime kNoon = WallTime{} + std::chrono::seconds(1778068800);

bool has_problem(const LoadResult& result, const std::string& text) {
  for (const auto& problem : result.problems) {
    if (problem == text) return true;
  }
  return false;
}

std::string problems_of(const LoadResult& result) {
  std::string all;
  for (const auto& problem : result.problems) all += problem + "\n";
  return all;
}

TEST(RegisterKey, AbsentOrNullRegistersNothing) {
  const auto result = parse("watch:\n  - path: /srv/a\n  - path: /srv/b\n    register: null\n");
  ASSERT_TRUE(result.ok()) << problems_of(result);
  EXPECT_FALSE(result.config->watch[0].registration);
  EXPECT_FALSE(result.config->watch[1].registration);
}

TEST(RegisterKey, ReadsEveryKeyAndDefaultsTheName) {
  const auto result = parse(R"(
watch:
  - path: /srv/a
    register: {base_model: meta-llama/Llama-3.1-8B-Instruct, name: "lora-{stem}-{date}", description: nightly}
  - path: /srv/b
    register:
      base_model: Qwen/Qwen2.5-7B
)");
  ASSERT_TRUE(result.ok()) << problems_of(result);
  const auto& a = result.config->watch[0].registration;
  ASSERT_TRUE(a);
  EXPECT_EQ(a->base_model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(a->name, "lora-{stem}-{date}");
  EXPECT_EQ(a->description, "nightly");
  const auto& b = result.config->watch[1].registration;
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "{stem}");
  EXPECT_FALSE(b->description);
  EXPECT_NE(result.config->watch[0], result.config->watch[1]) << "a reload notices a changed register";
}

TEST(RegisterKey, ProblemsNameTheKeyAndLine) {
  const auto result = parse(R"(watch:
  - path: /srv/a
    register:
      name: "{stem}-{version}"
      descripton: typo
  - path: /srv/b
    register: yes
  - path: /srv/c
    register: {base_model: "", name: "a/b"}
)");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, "test.yaml:4: watch[0].register.base_model: required")) << problems_of(result);
  EXPECT_TRUE(
      has_problem(result, "test.yaml:4: watch[0].register.name: unknown placeholder {version} (known: {stem}, {date})"))
      << problems_of(result);
  EXPECT_TRUE(
      has_problem(result, "test.yaml:5: watch[0].register.descripton: unknown key (did you mean \"description\"?)"))
      << problems_of(result);
  EXPECT_TRUE(has_problem(result, "test.yaml:7: watch[1].register: must be a mapping, got \"yes\""))
      << problems_of(result);
  EXPECT_TRUE(has_problem(result, "test.yaml:9: watch[2].register.base_model: must not be empty"))
      << problems_of(result);
  EXPECT_TRUE(has_problem(result, "test.yaml:9: watch[2].register.name: must not contain '/'")) << problems_of(result);
}

TEST(ModelName, StemLeavesOutTheArchiveExtensionAndDateIsUtc) {
  EXPECT_EQ(expand_model_name("{stem}", "lora.tar.gz", kNoon), "lora");
  EXPECT_EQ(expand_model_name("{stem}", "Lora.V2.ZIP", kNoon), "Lora.V2");
  EXPECT_EQ(expand_model_name("{stem}", "adapter.safetensors", kNoon), "adapter");
  EXPECT_EQ(expand_model_name("{stem}", "README", kNoon), "README");
  EXPECT_EQ(expand_model_name("team-{stem}-{date}", "x.tgz", kNoon), "team-x-20260506");
  EXPECT_EQ(expand_model_name("fixed", "x.zip", kNoon), "fixed");
  EXPECT_EQ(model_name_template_problem("{stem"), "has a '{' without its '}'");
  EXPECT_EQ(model_name_template_problem("stem}"), "has a '}' without its '{'");
  EXPECT_EQ(model_name_template_problem(""), "must not be empty");
  EXPECT_FALSE(model_name_template_problem("a-{date}-{stem}"));
}

TEST(Sidecar, SetsNameBaseModelAndDescription) {
  auto sidecar = parse_sidecar("name: better-{stem}\nbase_model: Qwen/Qwen2.5-7B\ndescription: tuned on x\n", "x.yaml");
  ASSERT_TRUE(sidecar) << sidecar.error().message;
  EXPECT_EQ(sidecar->name, "better-{stem}");
  EXPECT_EQ(sidecar->base_model, "Qwen/Qwen2.5-7B");
  EXPECT_EQ(sidecar->description, "tuned on x");
  auto empty = parse_sidecar("", "x.yaml");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->name);
  const RegisterConfig watch{"meta-llama/Llama-3.1-8B", "{stem}", "from the watch"};
  auto resolved = resolve_registration(watch, *sidecar, "/srv/drop/lora.zip", kNoon);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->name, "better-lora");
  EXPECT_EQ(resolved->base_model, "Qwen/Qwen2.5-7B");
  EXPECT_EQ(resolved->description, "tuned on x");
  auto unchanged = resolve_registration(watch, std::nullopt, "/srv/drop/lora.zip", kNoon);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(unchanged->name, "lora");
  EXPECT_EQ(unchanged->description, "from the watch");
}

TEST(Sidecar, ABrokenOneSaysFileLineAndKey) {
  const auto problem = [](const std::string& yaml) {
    auto sidecar = parse_sidecar(yaml, "/srv/drop/lora.zip.yaml");
    return sidecar ? std::string("(accepted)") : sidecar.error().message;
  };
  EXPECT_EQ(problem("name: ok\nbase_modle: x\n"),
            "sidecar: /srv/drop/lora.zip.yaml:2: base_modle: unknown key (did you mean \"base_model\"?); a sidecar "
            "sets name, base_model and description");
  EXPECT_EQ(problem("name: [a, b]\n"), "sidecar: /srv/drop/lora.zip.yaml:1: name: must be a string, got a list");
  EXPECT_EQ(problem("\nname: \"{stem}/x\"\n"), "sidecar: /srv/drop/lora.zip.yaml:2: name: must not contain '/'");
  EXPECT_EQ(problem("name: a\nname: b\n"), "sidecar: /srv/drop/lora.zip.yaml:2: name: duplicate key");
  EXPECT_EQ(problem("just text\n"),
            "sidecar: /srv/drop/lora.zip.yaml:1: must be a mapping of name, base_model and description");
  EXPECT_TRUE(problem("name: [unclosed\n").starts_with("sidecar: /srv/drop/lora.zip.yaml:2: YAML syntax error: "))
      << problem("name: [unclosed\n");
}

TEST(Sidecar, ReadBesideTheArchiveOnlyWhenTheWatchRegisters) {
  test::TempDir dir;
  const auto archive = dir.write("lora.zip", "zip bytes");
  const RegisterConfig watch{"base", "{stem}", std::nullopt};

  auto none = registration_for_archive(archive, watch, kNoon);
  ASSERT_TRUE(none.model);
  EXPECT_EQ(none.model->name, "lora");
  EXPECT_FALSE(none.sidecar);
  EXPECT_FALSE(none.problem);

  dir.write("lora.zip.yaml", "name: renamed\n");
  auto renamed = registration_for_archive(archive, watch, kNoon);
  ASSERT_TRUE(renamed.model);
  EXPECT_EQ(renamed.model->name, "renamed");
  EXPECT_EQ(renamed.sidecar, dir.path() / "lora.zip.yaml");
  EXPECT_FALSE(registration_for_archive(archive, std::nullopt, kNoon).sidecar) << "no register, no sidecar";

  dir.write("lora.zip.yaml", "name: ok\nbase: x\n");
  auto broken = registration_for_archive(archive, watch, kNoon);
  EXPECT_FALSE(broken.model);
  EXPECT_EQ(broken.sidecar, dir.path() / "lora.zip.yaml") << "a broken sidecar still goes with its archive";
  ASSERT_TRUE(broken.problem);
  EXPECT_TRUE(broken.problem->starts_with("sidecar: " + (dir.path() / "lora.zip.yaml").string() + ":2: base: "))
      << *broken.problem;

  std::filesystem::remove(dir.path() / "lora.zip.yaml");
  ASSERT_EQ(::mkfifo((dir.path() / "lora.zip.yaml").c_str(), 0600), 0);
  auto fifo = registration_for_archive(archive, watch, kNoon);
  EXPECT_EQ(fifo.problem, "sidecar: " + (dir.path() / "lora.zip.yaml").string() + ": not a regular file")
      << "read without blocking";
}

}  // namespace
}  // namespace modeldrop::config

#include "watch/name_filter.hpp"

#include <gtest/gtest.h>

namespace modeldrop::watch {
namespace {

const std::vector<std::string> kDefaultPatterns{"*.zip", "*.tar", "*.tar.gz", "*.tgz"};

TEST(IgnoredNames, EveryContractSuffixAndLeadingDot) {
  for (const char* name : {".model.zip", ".model.zip.AbC123", "model.zip.part", "model.zip.partial", "model.zip.tmp",
                           "model.zip.crdownload", ".model.zip.swp", "model.zip.swp", "model.zip~", "MODEL.ZIP.PART",
                           "model.tar.gz.Tmp", ""}) {
    EXPECT_TRUE(is_ignored_name(name)) << name;
  }
  for (const char* name : {"model.zip", "model.part.zip", "tmp.zip", "my~model.zip", "swp"}) {
    EXPECT_FALSE(is_ignored_name(name)) << name;
  }
}

TEST(NameFilter, PatternsAreCaseInsensitiveGlobs) {
  const NameFilter filter(kDefaultPatterns);
  for (const char* name : {"model.zip", "MODEL.ZIP", "weights.tar", "w.Tar.Gz", "lora.TGZ", "a b.zip", "x.y.zip"}) {
    EXPECT_TRUE(filter.accepts(name)) << name;
  }
  for (const char* name : {"model.rar", "model.gz", "notes.txt", "model.zip.bak", "zip", "model.tar.gz.part"}) {
    EXPECT_FALSE(filter.accepts(name)) << name;
  }
}

TEST(NameFilter, IgnoredNamesLoseEvenWhenAPatternMatches) {
  const NameFilter filter({"*"});
  EXPECT_TRUE(filter.matches_pattern(".hidden"));
  EXPECT_FALSE(filter.accepts(".hidden"));
  EXPECT_FALSE(filter.accepts("x.part"));
  EXPECT_TRUE(filter.accepts("anything"));
}

TEST(NameFilter, BracketAndQuestionMarkGlobs) {
  const NameFilter filter({"model-?.zip", "run[0-9].tar"});
  EXPECT_TRUE(filter.accepts("model-a.zip"));
  EXPECT_FALSE(filter.accepts("model-ab.zip"));
  EXPECT_TRUE(filter.accepts("RUN7.TAR"));
  EXPECT_FALSE(filter.accepts("runx.tar"));
}

}  // namespace
}  // namespace modeldrop::watch

// The conventions users bring from DVC, Snakemake and the shell (issue 13):
// ${VAR} in the YAML, --set overrides, status --json, GNU-style options,
// per-command help, init templates, --version. Through the real binary,
// and through the parser where a message's location matters.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "cli/templates.h"
#include "graph/expand.h"
#include "tests/test_util.h"
#include "util/strings.h"

namespace medpipe {
namespace {

using testing::ProcessResult;
using testing::TempDir;

using testing::Contains;

ProcessResult Medpipe(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  return testing::RunMedpipe(std::move(args), env);
}

Result<Pipeline> Parse(const std::string& yaml, std::map<std::string, std::string> env,
                       std::vector<std::string> overrides = {}) {
  LoadOptions o;
  o.env = [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  o.overrides = std::move(overrides);
  return ParsePipeline(yaml, "/tmp/x/p.yaml", BuiltinRegistry(), o);
}

const char* kTwoStages =
    "name: conv\n"
    "workdir: ${WORK:-work}\n"
    "stages:\n"
    "  - id: ann\n"
    "    kind: annotate\n"
    "    params: {images: '${DATA}/images', annotations: data/boxes.coco.json, patient_pattern: '^(P\\d+)_'}\n"
    "  - id: four\n"
    "    kind: filter\n"
    "    inputs: [ann]\n"
    "    params: {categories: [IPH, IVH, SAH, SDH]}\n";

TEST(EnvExpansionTest, VariablesAndDefaultsAreExpandedBeforeValidation) {
  Result<Pipeline> p = Parse(kTwoStages, {{"DATA", "/d"}});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->workdir, fs::path("/tmp/x/work")) << "default used when WORK is unset";
  EXPECT_EQ(p->stages[0].params.GetString("images"), "/d/images");

  Result<Pipeline> q = Parse(kTwoStages, {{"DATA", "/d"}, {"WORK", "/w"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->workdir, fs::path("/w"));
}

TEST(EnvExpansionTest, UnsetVariableWithoutDefaultIsAnErrorAtItsLocation) {
  Result<Pipeline> p = Parse(kTwoStages, {});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(Contains(p.status().message(), "/tmp/x/p.yaml:6:22: environment variable DATA is not set")) << p.status().message();
}

TEST(EnvExpansionTest, CredentialVariablesAreNeverExpandedIntoThePipeline) {
  std::string yaml = std::string(kTwoStages) + "# ${AWS_SECRET_ACCESS_KEY}\n";
  ASSERT_TRUE(Parse(yaml, {{"DATA", "/d"}}).ok()) << "comments are not scalars";
  std::string bad = kTwoStages;
  bad.replace(bad.find("${DATA}"), 7, "${AWS_SECRET_ACCESS_KEY}");
  Result<Pipeline> p = Parse(bad, {{"AWS_SECRET_ACCESS_KEY", "hunter2"}});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(Contains(p.status().message(), "holds a credential")) << p.status().message();
  EXPECT_FALSE(Contains(p.status().message(), "hunter2"));
  EXPECT_TRUE(IsCredentialVariable("GITHUB_TOKEN"));
  EXPECT_FALSE(IsCredentialVariable("DATA_ROOT"));
}

TEST(EnvExpansionTest, DollarDollarIsALiteralDollar) {
  std::string yaml = kTwoStages;
  yaml.replace(yaml.find("name: conv"), 10, "name: 'a$$b'");
  Result<Pipeline> p = Parse(yaml, {{"DATA", "/d"}});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->name, "a$b");
}

TEST(OverrideTest, SetIsTypedByTheParamAndChecked) {
  Result<Pipeline> p = Parse(kTwoStages, {{"DATA", "/d"}}, {"four.params.categories=[IPH, SDH]", "seed=9"});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->seed, 9u);
  EXPECT_EQ(p->stages[1].params.GetStringList("categories"), (std::vector<std::string>{"IPH", "SDH"}));

  Result<Pipeline> typo = Parse(kTwoStages, {{"DATA", "/d"}}, {"four.params.categoris=[IPH]"});
  ASSERT_FALSE(typo.ok());
  EXPECT_TRUE(Contains(typo.status().message(), "--set four.params.categoris=[IPH]: unknown param 'categoris' for kind "
                                           "'filter' (did you mean 'categories'?)"))
      << typo.status().message();
  Result<Pipeline> id = Parse(kTwoStages, {{"DATA", "/d"}}, {"fuor.params.categories=[IPH]"});
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(Contains(id.status().message(), "no stage 'fuor' (did you mean 'four'?)")) << id.status().message();
  Result<Pipeline> type = Parse(kTwoStages, {{"DATA", "/d"}}, {"seed=abc"});
  EXPECT_FALSE(type.ok());
}

class ConventionsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 4);
    testing::WriteText(dir_ / "p.yaml", kTwoStages);
  }
  std::string P() { return (dir_ / "p.yaml").string(); }
  std::vector<std::string> Env() { return {"DATA=" + (dir_ / "data").string()}; }
  TempDir dir_;
};

TEST_F(ConventionsCliTest, OverridesRunAndStatusSaysTheyWereSet) {
  ProcessResult r = Medpipe({"run", P(), "--set", "four.params.categories=[IPH, SDH]"}, Env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ProcessResult s = Medpipe({"status", P()}, Env());
  EXPECT_TRUE(Contains(s.out, "params.categories changed: [\"IPH\",\"SDH\"] -> [\"IPH\",\"IVH\",\"SAH\",\"SDH\"] (the last "
                         "run overrode it with --set)"))
      << s.out;
  ProcessResult same = Medpipe({"status", P(), "--set=four.params.categories=[IPH, SDH]"}, Env());
  EXPECT_TRUE(Contains(same.out, "overridden: four.params.categories=[IPH, SDH]")) << same.out;
  EXPECT_FALSE(Contains(same.out, "stale")) << same.out;
}

TEST_F(ConventionsCliTest, StatusJsonIsMachineReadable) {
  ASSERT_EQ(Medpipe({"run", P()}, Env()).exit_code, 0);
  ProcessResult s = Medpipe({"status", P(), "--json"}, Env());
  ASSERT_EQ(s.exit_code, 0);
  rapidjson::Document d;
  d.Parse(s.out.c_str());
  ASSERT_FALSE(d.HasParseError()) << s.out;
  ASSERT_EQ(d["stages"].Size(), 2u);
  EXPECT_STREQ(d["stages"][0]["id"].GetString(), "ann");
  EXPECT_STREQ(d["stages"][0]["state"].GetString(), "done");
  EXPECT_EQ(d["stages"][0]["items"]["total"].GetInt(), 12);
  EXPECT_TRUE(d["running"].IsNull());
  EXPECT_TRUE(Contains(d["stages"][1]["outputs"].GetString(), "work/four"));
}

TEST_F(ConventionsCliTest, GnuStyleOptionsAndDryRunPlanOnStdout) {
  for (const char* threads : {"-j2", "--threads=2"}) {
    ProcessResult r = Medpipe({"run", P(), threads, "-n"}, Env());
    EXPECT_EQ(r.exit_code, 0) << threads << ": " << r.err;
    EXPECT_TRUE(Contains(r.out, "would run ann: never run")) << r.out;
    EXPECT_TRUE(Contains(r.out, "would run four: input ann will run")) << r.out;
  }
  EXPECT_EQ(Medpipe({"run", P(), "--threads=0"}, Env()).exit_code, 2);
  EXPECT_EQ(Medpipe({"run", P(), "--from=ann", "-n"}, Env()).exit_code, 0);
}

TEST_F(ConventionsCliTest, HelpPerCommandAndUsageWithoutAFile) {
  ProcessResult a = Medpipe({"run", "--help"});
  ProcessResult b = Medpipe({"help", "run"});
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, b.out);
  EXPECT_TRUE(Contains(a.out, "usage: medpipe run FILE")) << a.out;
  EXPECT_TRUE(Contains(a.out, "--strict")) << a.out;
  ProcessResult none = Medpipe({"run"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_TRUE(Contains(none.err, "which pipeline file?")) << none.err;
  EXPECT_TRUE(Contains(none.err, "usage: medpipe run FILE")) << "prints the usage too: " << none.err;
  ProcessResult typo = Medpipe({"stauts"});
  EXPECT_TRUE(Contains(typo.err, "did you mean 'status'")) << typo.err;
}

TEST_F(ConventionsCliTest, StagesOfOneKindAndVersion) {
  ProcessResult one = Medpipe({"stages", "split"});
  EXPECT_EQ(one.exit_code, 0);
  EXPECT_TRUE(Contains(one.out, "split (v")) << one.out;
  EXPECT_FALSE(Contains(one.out, "annotate (v")) << one.out;
  EXPECT_EQ(Medpipe({"stages", "splt"}).exit_code, 2);
  ProcessResult v = Medpipe({"--version"});
  EXPECT_TRUE(Contains(v.out, "medpipe 0.")) << v.out;
  for (const char* lib : {"DCMTK", "OpenCV", "oneTBB", "libcurl"}) EXPECT_TRUE(Contains(v.out, lib)) << v.out;
}

TEST_F(ConventionsCliTest, EveryInitTemplateValidatesAsWritten) {
  for (const auto& name : TemplateNames()) {
    fs::path dir = dir_ / ("init_" + name);
    ProcessResult r = Medpipe({"init", "--template", name, dir.string()});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    ProcessResult v = Medpipe({"validate", (dir / "pipeline.yaml").string()});
    EXPECT_EQ(v.exit_code, 0) << name << ": " << v.err;
    EXPECT_EQ(Medpipe({"init", "--template", name, dir.string()}).exit_code, 1) << "never overwrites";
  }
  EXPECT_EQ(Medpipe({"init", "--template", "nope", (dir_ / "x").string()}).exit_code, 2);
}

TEST_F(ConventionsCliTest, AMovedProjectKeepsItsStagesDone) {
  // The pipeline, its data and its workdir move together (mv, or a copy
  // that keeps mtimes): nothing is stale, nothing reruns.
  fs::path a = dir_ / "project_a", b = dir_ / "project_b";
  fs::create_directories(a);
  fs::rename(dir_ / "data", a / "data");
  std::string yaml = kTwoStages;
  yaml.replace(yaml.find("'${DATA}/images'"), 16, "data/images");
  testing::WriteText(a / "p.yaml", yaml);
  ASSERT_EQ(Medpipe({"run", (a / "p.yaml").string()}).exit_code, 0);
  fs::rename(a, b);
  ProcessResult s = Medpipe({"status", (b / "p.yaml").string()});
  EXPECT_FALSE(Contains(s.out, "stale")) << s.out;
  EXPECT_TRUE(Contains(s.out, "ann                  annotate   done")) << s.out;
  ProcessResult r = Medpipe({"run", (b / "p.yaml").string()});
  EXPECT_TRUE(Contains(r.err, "skip ann: up to date")) << r.err;
  EXPECT_TRUE(Contains(r.err, "skip four: up to date")) << r.err;
}

TEST_F(ConventionsCliTest, MissingSourcesStopTheRunBeforeAnyWork) {
  ProcessResult v = Medpipe({"validate", P()}, {"DATA=" + (dir_ / "nowhere").string()});
  EXPECT_EQ(v.exit_code, 2);
  EXPECT_TRUE(Contains(v.err, "p.yaml:6:22: stage 'ann': params.images: " + (dir_ / "nowhere/images").string() +
                                  " does not exist"))
      << v.err;
  ProcessResult r = Medpipe({"run", P()}, {"DATA=" + (dir_ / "nowhere").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "work")) << "nothing ran";
}

}  // namespace
}  // namespace medpipe

// The conventions users bring from DVC, Snakemake and the shell (issue 13):
// ${VAR} in the YAML, --set overrides, status --json, GNU-style options,
// per-command help, init templates, --version. Through the real binary,
// and through the parser where a message's location matters.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <set>
#include <sstream>

#include "cli/starter_cxr.h"
#include "cli/templates.h"
#include "graph/expand.h"
#include "infer/model.h"
#include "infer/starter_model.h"
#include "tests/test_util.h"
#include "util/csv.h"
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

// Every template is offered where users look for them: `init --help` and the
// bash and zsh completions (their lists are written by hand).
TEST(InitTemplatesTest, HelpAndCompletionsNameEveryTemplate) {
  const std::string help = Medpipe({"init", "--help"}).out;
  const fs::path completion = fs::path(MEDPIPE_SOURCE_DIR) / "scripts/completion";
  auto line_with = [](const fs::path& file, const std::string& part) {
    std::istringstream in(testing::ReadText(file));
    for (std::string line; std::getline(in, line);) {
      if (Contains(line, part)) return line;
    }
    return std::string();
  };
  const std::string bash = line_with(completion / "medpipe.bash", "--template)");
  const std::string zsh = line_with(completion / "_medpipe", "--template[");
  ASSERT_FALSE(bash.empty() || zsh.empty());
  for (const std::string& name : TemplateNames()) {
    EXPECT_TRUE(Contains(help, name)) << name << " in: " << help;
    EXPECT_TRUE(Contains(bash, " " + name + " ") || Contains(bash, "\"" + name + " ") ||
                Contains(bash, " " + name + "\""))
        << name << " in: " << bash;
    EXPECT_TRUE(Contains(zsh, "(" + name + " ") || Contains(zsh, " " + name + " ") || Contains(zsh, " " + name + ")"))
        << name << " in: " << zsh;
  }
}

// The cxr template needs a model file to validate and images to run on: init
// writes starter radiographs and an untrained starter network, and the
// pipeline runs as written, one results row per starter image.
TEST_F(ConventionsCliTest, CxrTemplateRunsOnItsStarterImagesAndModel) {
  const fs::path dir = dir_ / "cxr";
  ProcessResult init = Medpipe({"init", "--template", "cxr", dir.string()});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const std::string yaml = testing::ReadText(dir / "pipeline.yaml");
  EXPECT_TRUE(Contains(yaml, "UNTRAINED STARTER")) << "the template must say the model means nothing";
  EXPECT_TRUE(Contains(yaml, "RANDOM weights")) << yaml;
  ProcessResult v = Medpipe({"validate", (dir / "pipeline.yaml").string()});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  ProcessResult run = Medpipe({"run", (dir / "pipeline.yaml").string()}, {"MEDPIPE_WORKDIR=" + (dir / "w").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  Result<CsvTable> csv = ReadCsv((dir / "w/triage/results.csv").string());
  ASSERT_TRUE(csv.ok()) << csv.status().message();
  EXPECT_TRUE(csv->errors.empty());
  ASSERT_EQ(csv->rows.size(), static_cast<size_t>(kStarterCxrImageCount));
  const int file = csv->Column("file"), level = csv->Column("risk_level");
  const int first = csv->Column("Atelectasis"), last = csv->Column("Enlarged Cardiomediastinum");
  ASSERT_TRUE(file >= 0 && level >= 0 && first >= 0 && last - first == kStarterModelOutputs - 1);
  std::set<std::string> files, levels, probabilities;
  for (const CsvRow& row : csv->rows) {
    files.insert(row.fields[file]);
    levels.insert(row.fields[level]);
    for (int c = first; c <= last; ++c) {
      const double p = std::stod(row.fields[c]);
      EXPECT_GT(p, 0.01) << "not saturated";
      EXPECT_LT(p, 0.99) << "not saturated";
      probabilities.insert(row.fields[c]);
    }
  }
  EXPECT_EQ(files.size(), static_cast<size_t>(kStarterCxrImageCount));
  EXPECT_GT(probabilities.size(), csv->rows.size() * kStarterModelOutputs / 2) << "scores depend on label and image";
  EXPECT_GT(levels.size(), 1u) << "the starter images fill more than one level folder";
  for (const auto& l : levels) EXPECT_TRUE(fs::is_directory(dir / "w/triage" / l)) << l;

  // The starter model is an ordinary TorchScript file to infer's loader.
  Result<std::unique_ptr<Model>> model = LoadModel(dir / kStarterCxrModel, ModelOptions{});
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<float> x(224 * 224, 0.f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 224 < 100) ? 500.f : -500.f;
  Result<std::vector<float>> y = (*model)->Forward(x.data(), 1, 1, 224, 224);
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_EQ(y->size(), static_cast<size_t>(kStarterModelOutputs));
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

// Paths nested in lists and maps (merge's sources: [{path: ...}]) are
// checked like top-level ones, each named with its place and file:line:col.
TEST_F(ConventionsCliTest, NestedSourcePathsAreCheckedBeforeAnyWork) {
  fs::create_directories(dir_ / "there");
  testing::WriteText(dir_ / "there/a.json", "{\"images\": [], \"annotations\": [], \"categories\": []}");
  testing::WriteText(dir_ / "m.yaml",
                     "name: m\nworkdir: work\nstages:\n"
                     "  - id: merged\n    kind: merge\n    params:\n      categories: [IPH]\n      sources:\n"
                     "        - {path: there/a.json, prefix: a_}\n"
                     "        - {path: missing_export, prefix: r_}\n");
  const std::string m = (dir_ / "m.yaml").string();
  ProcessResult v = Medpipe({"validate", m});
  EXPECT_EQ(v.exit_code, 2) << v.err;
  EXPECT_TRUE(Contains(v.err, "m.yaml:9:9: stage 'merged': params.sources[1].path: " +
                                  (dir_ / "missing_export").string() + " does not exist"))
      << v.err;
  EXPECT_FALSE(Contains(v.err, "sources[0]")) << v.err;
  ProcessResult r = Medpipe({"run", m});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "work/merged")) << "nothing ran";
}

}  // namespace
}  // namespace medpipe

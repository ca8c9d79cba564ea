// Tests of pipeline-file parsing and validation (graph/): every error kind
// with its exact file:line:column, the stable topological order, defaults,
// path resolution, canonical params and the DOT/Mermaid renderings.
//
// Locations asserted here are 1-based line:column of the offending YAML node
// (yaml-cpp marks), counted by hand in the literal pipeline texts below.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "graph/params.h"
#include "graph/pipeline.h"
#include "graph/render.h"
#include "stages/registry.h"
#include "stages/stage.h"
#include "util/status.h"

namespace medpipe {
namespace {

// The file name never has to exist: ParsePipeline only uses it for messages
// and to resolve relative paths, so an absolute fake path keeps resolved
// paths predictable.
constexpr char kFile[] = "/tmp/medpipe-graph-test/p.yaml";

Result<Pipeline> Parse(const std::string& yaml, const KindCatalog& catalog = BuiltinRegistry()) {
  return ParsePipeline(yaml, kFile, catalog);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Asserts a config error whose whole message is exactly `expected` (one
// error, nothing else reported): a stray second error would mean the
// validator double-reports or cascades.
void ExpectOnlyError(const Result<Pipeline>& r, const std::string& expected) {
  ASSERT_FALSE(r.ok()) << "expected a config error: " << expected;
  EXPECT_EQ(r.status().code(), Status::Code::kConfig);
  EXPECT_EQ(r.status().message(), expected);
}

class NoopStage : public Stage {
 public:
  Status Run(StageContext&) const override { return Status::OK(); }
};

Result<std::unique_ptr<Stage>> MakeNoop(const StageDecl&, uint64_t) {
  return std::unique_ptr<Stage>(new NoopStage);
}

// A catalog with one param of every type and kinds with varied input
// counts, so type conversion and input-count rules can be tested apart from
// the built-in stages' choices.
const Registry& TestRegistry() {
  static const Registry* registry = [] {
    auto* r = new Registry;
    KindSpec source;
    source.name = "source";
    source.help = "a stage with no inputs and one param of every type";
    source.min_inputs = 0;
    source.max_inputs = 0;
    source.params = {
        {"dir", ParamType::kPath, "data", false, "a folder", {}},
        {"count", ParamType::kInt, "3", false, "an int", {}},
        {"ratio", ParamType::kFloat, "0.5", false, "a float", {}},
        {"flag", ParamType::kBool, "false", false, "a bool", {}},
        {"tags", ParamType::kStringList, "[a, b]", false, "a list", {}},
        {"map", ParamType::kStringMap, "", false, "a map", {}},
        {"mode", ParamType::kString, "fast", false, "a choice", {"fast", "slow"}},
        {"opts", ParamType::kObject, "", false, "anything", {}},
        {"name", ParamType::kString, "", false, "a free string", {}},
    };
    r->Add(StageKind{source, MakeNoop});
    KindSpec join;
    join.name = "join";
    join.min_inputs = 1;
    join.max_inputs = -1;
    r->Add(StageKind{join, MakeNoop});
    KindSpec pair;
    pair.name = "pair";
    pair.min_inputs = 2;
    pair.max_inputs = 3;
    r->Add(StageKind{pair, MakeNoop});
    return r;
  }();
  return *registry;
}

std::vector<std::string> Ids(const Pipeline& p) {
  std::vector<std::string> out;
  for (const auto& s : p.stages) out.push_back(s.id);
  return out;
}

// ---------------------------------------------------------------------------
// One test per error kind.

TEST(GraphTest, YamlSyntaxErrorIsLocated) {
  // Line 4 is indented one column less than its sibling key: yaml-cpp stops
  // at that line's first character.
  ExpectOnlyError(Parse("name: x\n"
                        "stages:\n"
                        "  - id: a\n"
                        "   kind: annotate\n"),
                  std::string(kFile) + ":4:4: YAML syntax error: end of sequence not found");
}

TEST(GraphTest, UnclosedFlowListIsLocatedWhereYamlNoticesIt) {
  // An unclosed '[' is only noticed at the end of the text (line 5, col 1);
  // the message must still carry a position rather than just the file.
  ExpectOnlyError(Parse("name: x\n"
                        "stages:\n"
                        "  - id: a\n"
                        "    kind: [annotate\n"),
                  std::string(kFile) + ":5:1: YAML syntax error: end of sequence flow not found");
}

TEST(GraphTest, UnknownTopLevelKeySuggestsClosest) {
  ExpectOnlyError(Parse("name: x\n"
                        "workdri: w\n"
                        "stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":2:1: unknown top-level key 'workdri' (did you mean 'workdir'?)");
}

TEST(GraphTest, UnknownTopLevelKeyWithoutPlausibleSuggestion) {
  // Nothing within edit distance: no "did you mean" at all, rather than a
  // misleading one.
  ExpectOnlyError(Parse("name: x\n"
                        "stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "xyzzyplugh: 1\n"),
                  std::string(kFile) + ":6:1: unknown top-level key 'xyzzyplugh'");
}

TEST(GraphTest, UnknownStageKeySuggestsClosest) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    descripton: typo\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":4:5: unknown stage key 'descripton' (did you mean 'description'?)");
}

TEST(GraphTest, MissingIdPointsAtTheStageEntry) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - kind: annotate\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":2:5: stage has no 'id'");
}

TEST(GraphTest, EmptyIdIsMissing) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: ''\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":2:5: stage has no 'id'");
}

TEST(GraphTest, IdThatIsNotAPlainNameIsRejected) {
  // The id names a folder in the workdir, so a path must not get through.
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: ../escape\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) +
                      ":2:9: stage id '../escape' must be a plain name (it names a folder in the workdir)");
  auto r = Parse("stages:\n"
                 "  - id: a/b\n"
                 "    kind: annotate\n"
                 "    params: {images: i}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(":2:9: stage id 'a/b' must be a plain name"), std::string::npos);
  r = Parse("stages:\n"
            "  - id: .hidden\n"
            "    kind: annotate\n"
            "    params: {images: i}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(":2:9: stage id '.hidden' must be a plain name"), std::string::npos);
}

TEST(GraphTest, DuplicateIdPointsAtTheSecond) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: j}\n"),
                  std::string(kFile) + ":5:9: duplicate stage id 'a'");
}

TEST(GraphTest, MissingKindPointsAtTheStageEntry) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":2:5: stage 'a' has no 'kind'");
}

TEST(GraphTest, UnknownKindSuggestsClosest) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: anotate\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":3:11: stage 'a': unknown kind 'anotate' (did you mean 'annotate'?)");
}

TEST(GraphTest, UnknownKindWithoutCloseNamePointsToStagesCommand) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: teleport\n"),
                  std::string(kFile) + ":3:11: stage 'a': unknown kind 'teleport' (see 'medpipe stages')");
}

TEST(GraphTest, UnknownParamSuggestsClosest) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params:\n"
                        "      images: i\n"
                        "      recursiv: true\n"),
                  std::string(kFile) +
                      ":6:7: stage 'a': unknown param 'recursiv' for kind 'annotate' (did you mean 'recursive'?)");
}

TEST(GraphTest, WrongBoolTypeNamesParamAndType) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params:\n"
                        "      images: i\n"
                        "      recursive: maybe\n"),
                  std::string(kFile) +
                      ":6:18: stage 'a': param 'recursive' (bool): expected true or false, got 'maybe'");
}

TEST(GraphTest, ListWhereStringGoesNamesParamAndType) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params:\n"
                        "      images: i\n"
                        "      source: [a, b]\n"),
                  std::string(kFile) + ":6:15: stage 'a': param 'source' (string): expected a string, got a list");
}


TEST(GraphTest, WrongTypeForEveryParamType) {
  struct Case {
    const char* key;
    const char* value;
    const char* expected;  // the message after "file:5:COL: "
  };
  const Case cases[] = {
      {"count", "abc", "stage 's': param 'count' (int): expected an integer, got 'abc'"},
      {"count", "1.5", "stage 's': param 'count' (int): expected an integer, got '1.5'"},
      {"count", "[1]", "stage 's': param 'count' (int): expected an integer, got a list"},
      // One past INT64_MAX must not wrap around.
      {"count", "9223372036854775808", "stage 's': param 'count' (int): expected an integer, got '9223372036854775808'"},
      {"ratio", "lots", "stage 's': param 'ratio' (float): expected a number, got 'lots'"},
      {"ratio", "1,5", "stage 's': param 'ratio' (float): expected a number, got '1,5'"},
      // YAML 1.1 spells booleans as words; a number is not one.
      {"flag", "1", "stage 's': param 'flag' (bool): expected true or false, got '1'"},
      {"flag", "{a: b}", "stage 's': param 'flag' (bool): expected true or false, got a mapping"},
      {"tags", "single", "stage 's': param 'tags' (list of strings): expected a list of strings, got 'single'"},
      {"tags", "[a, [b]]", "stage 's': param 'tags' (list of strings): expected a list of strings, item 2 is a list"},
      {"map", "[a, b]", "stage 's': param 'map' (map of strings): expected a mapping of strings, got a list"},
      {"map", "{a: [b]}", "stage 's': param 'map' (map of strings): expected a string for key 'a', got a list"},
      {"dir", "{a: b}", "stage 's': param 'dir' (path): expected a string, got a mapping"},
      {"name", "[x]", "stage 's': param 'name' (string): expected a string, got a list"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.key) + ": " + c.value);
    std::string yaml = std::string("stages:\n"
                                   "  - id: s\n"
                                   "    kind: source\n"
                                   "    params:\n"
                                   "      ") +
                       c.key + ": " + c.value + "\n";
    // The value starts after 6 spaces, the key, ':' and a space.
    int column = 6 + static_cast<int>(std::string(c.key).size()) + 2 + 1;
    ExpectOnlyError(Parse(yaml, TestRegistry()),
                    std::string(kFile) + ":5:" + std::to_string(column) + ": " + c.expected);
  }
}

TEST(GraphTest, MissingRequiredParamPointsAtParamsBlock) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params:\n"
                        "      recursive: true\n"),
                  std::string(kFile) +
                      ":5:7: stage 'a': missing required param 'images' (folder of images (relative to the "
                      "pipeline file))");
}

TEST(GraphTest, MissingRequiredParamWithoutParamsBlockIsLocated) {
  // With no `params:` key at all the error has no node to point at; it
  // should fall back to the stage entry (2:5) like the other stage errors.
  auto r = Parse("stages:\n"
                 "  - id: a\n"
                 "    kind: annotate\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kConfig);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("stage 'a': missing required param 'images'"), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind(std::string(kFile) + ":2:5: ", 0), 0u) << msg;
}

TEST(GraphTest, MissingRequiredParamWithEmptyParamsBlockPointsAtParams) {
  // `params:` with nothing after it is a null node; its mark is where the
  // value would have started, which yaml-cpp puts after the line break.
  auto r = Parse("stages:\n"
                 "  - id: a\n"
                 "    kind: annotate\n"
                 "    params:\n"
                 "  - id: b\n"
                 "    kind: annotate\n"
                 "    params: {images: i}\n");
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("stage 'a': missing required param 'images'"), std::string::npos) << msg;
  // Either the stage entry (2:5) or the `params:` line (4) is a fine
  // answer; line 5 is the next stage's.
  const bool at_stage = msg.rfind(std::string(kFile) + ":2:5: ", 0) == 0;
  const bool at_params = msg.rfind(std::string(kFile) + ":4:", 0) == 0;
  EXPECT_TRUE(at_stage || at_params) << msg;
  EXPECT_EQ(Lines(msg).size(), 1u) << msg;
}

TEST(GraphTest, ChoicesViolation) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "  - id: f\n"
                        "    kind: filter\n"
                        "    inputs: [a]\n"
                        "    params:\n"
                        "      categories: [IPH]\n"
                        "      emptied_images: dorp\n"),
                  std::string(kFile) +
                      ":10:23: stage 'f': param 'emptied_images' (string): 'dorp' is not one of: keep, drop");
}

TEST(GraphTest, InputThatDoesNotExistSuggestsClosest) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: ann\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "  - id: f\n"
                        "    kind: filter\n"
                        "    inputs: [an]\n"
                        "    params: {categories: [x]}\n"),
                  std::string(kFile) +
                      ":7:14: stage 'f': input 'an' is not a stage in this pipeline (did you mean 'ann'?)");
}

TEST(GraphTest, InputThatDoesNotExistWithoutSuggestion) {
  // A scalar `inputs:` is one id; its location is the scalar itself.
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: ann\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "  - id: f\n"
                        "    kind: filter\n"
                        "    inputs: somewhere_else\n"
                        "    params: {categories: [x]}\n"),
                  std::string(kFile) + ":7:13: stage 'f': input 'somewhere_else' is not a stage in this pipeline");
}

TEST(GraphTest, SelfInput) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: f\n"
                        "    kind: filter\n"
                        "    inputs: [f]\n"
                        "    params: {categories: [x]}\n"),
                  std::string(kFile) + ":4:14: stage 'f' reads its own output");
}

TEST(GraphTest, WrongNumberOfInputs) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: f\n"
                        "    kind: filter\n"
                        "    params: {categories: [x]}\n"),
                  std::string(kFile) + ":2:5: stage 'f': kind 'filter' takes exactly 1 input(s), 0 given");
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: annotate\n"
                        "    params: {images: i}\n"
                        "  - id: b\n"
                        "    kind: annotate\n"
                        "    inputs: [a]\n"
                        "    params: {images: i}\n"),
                  std::string(kFile) + ":5:5: stage 'b': kind 'annotate' takes exactly 0 input(s), 1 given");
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: j\n"
                        "    kind: join\n",
                        TestRegistry()),
                  std::string(kFile) + ":2:5: stage 'j': kind 'join' takes at least 1 input(s), 0 given");
  const std::string four_sources =
      "stages:\n"
      "  - {id: a, kind: source}\n"
      "  - {id: b, kind: source}\n"
      "  - {id: c, kind: source}\n"
      "  - {id: d, kind: source}\n";
  ExpectOnlyError(Parse(four_sources + "  - {id: p, kind: pair, inputs: [a]}\n", TestRegistry()),
                  std::string(kFile) + ":6:5: stage 'p': kind 'pair' takes 2 to 3 input(s), 1 given");
  ExpectOnlyError(Parse(four_sources + "  - {id: p, kind: pair, inputs: [a, b, c, d]}\n", TestRegistry()),
                  std::string(kFile) + ":6:5: stage 'p': kind 'pair' takes 2 to 3 input(s), 4 given");
  EXPECT_TRUE(Parse(four_sources + "  - {id: p, kind: pair, inputs: [a, b, c]}\n", TestRegistry()).ok());
}

TEST(GraphTest, TwoCycle) {
  ExpectOnlyError(Parse("stages:\n"
                        "  - id: a\n"
                        "    kind: filter\n"
                        "    inputs: [b]\n"
                        "    params: {categories: [x]}\n"
                        "  - id: b\n"
                        "    kind: filter\n"
                        "    inputs: [a]\n"
                        "    params: {categories: [x]}\n"),
                  std::string(kFile) + ":2:5: cycle: a -> b -> a");
}

TEST(GraphTest, ThreeCycle) {
  // The path follows the `inputs` edges and closes on the stage it started
  // from, located at that stage's entry.
  ExpectOnlyError(Parse("stages:\n"
                        "  - {id: a, kind: join, inputs: [b]}\n"
                        "  - {id: b, kind: join, inputs: [c]}\n"
                        "  - {id: c, kind: join, inputs: [a]}\n",
                        TestRegistry()),
                  std::string(kFile) + ":2:5: cycle: a -> b -> c -> a");
}

TEST(GraphTest, CycleBehindAcyclicStagesIsFound) {
  // The cycle does not include the first stages; stages that only hang off
  // the cycle (d) must not appear in the path.
  ExpectOnlyError(Parse("stages:\n"
                        "  - {id: src, kind: source}\n"
                        "  - {id: ok, kind: join, inputs: [src]}\n"
                        "  - {id: x, kind: join, inputs: [src, y]}\n"
                        "  - {id: y, kind: join, inputs: [x]}\n"
                        "  - {id: d, kind: join, inputs: [y]}\n",
                        TestRegistry()),
                  std::string(kFile) + ":4:5: cycle: x -> y -> x");
}

TEST(GraphTest, SeveralErrorsReportedAtOnceInFileOrder) {
  auto r = Parse("name: x\n"
                 "stagez: 1\n"
                 "stages:\n"
                 "  - id: a\n"
                 "    kind: anotate\n"
                 "  - id: b\n"
                 "    kind: annotate\n"
                 "    params: {images: i, recursive: maybe}\n"
                 "  - id: b\n"
                 "    kind: annotate\n"
                 "    params: {images: i, extension: [.png]}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kConfig);
  const std::string f = kFile;
  EXPECT_EQ(Lines(r.status().message()),
            (std::vector<std::string>{
                f + ":2:1: unknown top-level key 'stagez' (did you mean 'stages'?)",
                f + ":5:11: stage 'a': unknown kind 'anotate' (did you mean 'annotate'?)",
                f + ":8:36: stage 'b': param 'recursive' (bool): expected true or false, got 'maybe'",
                f + ":9:9: duplicate stage id 'b'",
                f + ":11:25: stage 'b': unknown param 'extension' for kind 'annotate' (did you mean 'extensions'?)",
            }));
}

TEST(GraphTest, GraphErrorsReportedTogetherWithParamErrors) {
  // The header promises every problem at once; a user fixing a param typo
  // should not discover the misspelt input only on the next run.
  auto r = Parse("stages:\n"
                 "  - id: ann\n"
                 "    kind: annotate\n"
                 "    params: {images: i, recursive: maybe}\n"
                 "  - id: f\n"
                 "    kind: filter\n"
                 "    inputs: [an]\n"
                 "    params: {categories: [x]}\n");
  ASSERT_FALSE(r.ok());
  std::vector<std::string> lines = Lines(r.status().message());
  ASSERT_GE(lines.size(), 1u);
  EXPECT_EQ(lines[0], std::string(kFile) + ":4:36: stage 'ann': param 'recursive' (bool): expected true or false, got 'maybe'");
  EXPECT_EQ(lines[1], std::string(kFile) +
                          ":7:14: stage 'f': input 'an' is not a stage in this pipeline (did you mean 'ann'?)");
}

TEST(GraphTest, DuplicateMappingKeyIsAnError) {
  // yaml-cpp keeps both keys and `node["params"]` returns the first, so the
  // second params block is silently ignored: a typo the user never hears of.
  auto r = Parse("stages:\n"
                 "  - id: a\n"
                 "    kind: annotate\n"
                 "    params: {images: first}\n"
                 "    params: {images: second}\n");
  ASSERT_FALSE(r.ok()) << "the second params block would be silently ignored";
  EXPECT_EQ(r.status().code(), Status::Code::kConfig);
  EXPECT_NE(r.status().message().find(std::string(kFile) + ":5:5:"), std::string::npos) << r.status().message();
}

TEST(GraphTest, StructuralErrors) {
  ExpectOnlyError(Parse(""), std::string(kFile) +
                                 ": a pipeline file is a mapping with 'name', 'workdir', 'seed' and 'stages'");
  ExpectOnlyError(Parse("- a\n- b\n"), std::string(kFile) +
                                           ":1:1: a pipeline file is a mapping with 'name', 'workdir', 'seed' and "
                                           "'stages'");
  ExpectOnlyError(Parse("name: x\n"), std::string(kFile) + ":1:1: no 'stages' list");
  ExpectOnlyError(Parse("name: x\nstages: {a: b}\n"),
                  std::string(kFile) + ":2:9: 'stages' must be a list of stage entries");
  ExpectOnlyError(Parse("stages: []\n"), std::string(kFile) + ": the pipeline has no stages");
  ExpectOnlyError(Parse("stages:\n  - just a string\n"),
                  std::string(kFile) + ":2:5: a stage entry is a mapping with 'id', 'kind', 'params' and 'inputs'");
  {
    // The bad block is reported; the required param it could not supply is
    // reported too (without a location: see
    // MissingRequiredParamWithoutParamsBlockIsLocated).
    auto r = Parse("stages:\n"
                   "  - id: a\n"
                   "    kind: annotate\n"
                   "    params: [images, i]\n");
    ASSERT_FALSE(r.ok());
    std::vector<std::string> lines = Lines(r.status().message());
    ASSERT_EQ(lines.size(), 2u) << r.status().message();
    EXPECT_EQ(lines[0], std::string(kFile) + ":4:13: stage 'a': 'params' must be a mapping");
    EXPECT_NE(lines[1].find("stage 'a': missing required param 'images'"), std::string::npos) << lines[1];
  }
  ExpectOnlyError(Parse("stages:\n"
                        "  - {id: s, kind: source}\n"
                        "  - {id: j, kind: join, inputs: {a: s}}\n",
                        TestRegistry()),
                  std::string(kFile) + ":3:33: stage 'j': 'inputs' must be a list of stage ids");
  ExpectOnlyError(Parse("stages:\n"
                        "  - {id: s, kind: source}\n"
                        "  - {id: j, kind: join, inputs: [s, [t]]}\n",
                        TestRegistry()),
                  std::string(kFile) + ":3:37: stage 'j': an input is a stage id");
}

TEST(GraphTest, Seed) {
  auto r = Parse("seed: 12345678901234\nstages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->seed, 12345678901234u);
  r = Parse("stages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seed, 0u);
  ExpectOnlyError(Parse("seed: -1\nstages:\n  - {id: s, kind: source}\n", TestRegistry()),
                  std::string(kFile) + ":1:7: seed: expected a non-negative integer");
  ExpectOnlyError(Parse("seed: abc\nstages:\n  - {id: s, kind: source}\n", TestRegistry()),
                  std::string(kFile) + ":1:7: seed: expected a non-negative integer");
}

// ---------------------------------------------------------------------------
// The DAG: order and reachability.

TEST(GraphTest, TopologicalOrderFollowsFileOrderAmongReadyStages) {
  // c reads b and a, but is written first; d is independent. Each step takes
  // the earliest ready stage in file order.
  const std::string yaml =
      "stages:\n"
      "  - {id: c, kind: join, inputs: [b, a]}\n"
      "  - {id: a, kind: source}\n"
      "  - {id: b, kind: join, inputs: a}\n"
      "  - {id: d, kind: source}\n";
  auto r = Parse(yaml, TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Ids(*r), (std::vector<std::string>{"a", "b", "c", "d"}));
  // The same text always gives the same order.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Ids(*Parse(yaml, TestRegistry())), Ids(*r));
  // Locations survive reordering: c is still at line 2.
  EXPECT_EQ(r->stages[2].loc.ToString(), std::string(kFile) + ":2:5");
  EXPECT_EQ(r->stages[2].inputs, (std::vector<std::string>{"b", "a"}));
  ASSERT_EQ(r->stages[2].input_locs.size(), 2u);
  EXPECT_EQ(r->stages[2].input_locs[1].ToString(), std::string(kFile) + ":2:37");
}

TEST(GraphTest, IndependentStagesKeepFileOrder) {
  auto r = Parse("stages:\n"
                 "  - {id: z, kind: source}\n"
                 "  - {id: m, kind: source}\n"
                 "  - {id: a, kind: source}\n"
                 "  - {id: zz, kind: join, inputs: [z]}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Ids(*r), (std::vector<std::string>{"z", "m", "a", "zz"}));
}

TEST(GraphTest, DownstreamUpstreamDependants) {
  //   a -> b -> c
  //   a -> d
  //   e          (independent)
  //   f <- c, e
  auto r = Parse("stages:\n"
                 "  - {id: a, kind: source}\n"
                 "  - {id: b, kind: join, inputs: [a]}\n"
                 "  - {id: c, kind: join, inputs: [b]}\n"
                 "  - {id: d, kind: join, inputs: [a]}\n"
                 "  - {id: e, kind: source}\n"
                 "  - {id: f, kind: join, inputs: [c, e]}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Pipeline& p = *r;
  ASSERT_EQ(Ids(p), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
  auto set_of = [&](const std::vector<bool>& mark) {
    std::vector<std::string> out;
    for (size_t i = 0; i < mark.size(); ++i) {
      if (mark[i]) out.push_back(p.stages[i].id);
    }
    return out;
  };
  EXPECT_EQ(p.Find("c"), 2);
  EXPECT_EQ(p.Find("nope"), -1);
  EXPECT_EQ(set_of(p.Downstream(p.Find("a"))), (std::vector<std::string>{"a", "b", "c", "d", "f"}));
  EXPECT_EQ(set_of(p.Downstream(p.Find("b"))), (std::vector<std::string>{"b", "c", "f"}));
  EXPECT_EQ(set_of(p.Downstream(p.Find("e"))), (std::vector<std::string>{"e", "f"}));
  EXPECT_EQ(set_of(p.Downstream(p.Find("f"))), (std::vector<std::string>{"f"}));
  EXPECT_EQ(set_of(p.Upstream(p.Find("f"))), (std::vector<std::string>{"a", "b", "c", "e", "f"}));
  EXPECT_EQ(set_of(p.Upstream(p.Find("d"))), (std::vector<std::string>{"a", "d"}));
  EXPECT_EQ(set_of(p.Upstream(p.Find("a"))), (std::vector<std::string>{"a"}));
  EXPECT_EQ(p.Dependants(p.Find("a")), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(p.Dependants(p.Find("e")), (std::vector<size_t>{5}));
  EXPECT_TRUE(p.Dependants(p.Find("f")).empty());
}

TEST(GraphTest, DuplicateInputIsCountedButDoesNotBreakOrdering) {
  // [a, a] must not leave the reader waiting for a second "a" forever.
  auto r = Parse("stages:\n"
                 "  - {id: j, kind: join, inputs: [a, a]}\n"
                 "  - {id: a, kind: source}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Ids(*r), (std::vector<std::string>{"a", "j"}));
}

// ---------------------------------------------------------------------------
// Params: defaults, paths, canonical form.

TEST(GraphTest, DefaultsAppliedAndPathsResolvedAgainstTheFile) {
  auto r = Parse("stages:\n"
                 "  - id: a\n"
                 "    kind: annotate\n"
                 "    params:\n"
                 "      images: raw/../images/\n"
                 "      labels_csv: /data/labels.csv\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Params& params = r->stages[0].params;
  EXPECT_EQ(params.GetString("images"), "/tmp/medpipe-graph-test/images/");
  EXPECT_EQ(params.GetString("labels_csv"), "/data/labels.csv");
  EXPECT_TRUE(params.GetBool("recursive"));
  EXPECT_EQ(params.GetStringList("extensions"), (std::vector<std::string>{".png", ".jpg", ".jpeg"}));
  EXPECT_EQ(params.GetString("labels_csv_key"), "file");
  EXPECT_EQ(params.GetString("labels_csv_label"), "label");
  // Optional params without default are absent, and read as empty values.
  EXPECT_FALSE(params.Has("patient_pattern"));
  EXPECT_EQ(params.GetString("patient_pattern"), "");
  EXPECT_FALSE(params.Has("labels"));
  EXPECT_TRUE(params.GetStringMap("labels").empty());
  EXPECT_EQ(params.stage_id(), "a");
  EXPECT_EQ(r->stages[0].spec, BuiltinRegistry().FindKind("annotate"));
}

TEST(GraphTest, TypedDefaultsOfEveryType) {
  auto r = Parse("stages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Params& params = r->stages[0].params;
  EXPECT_EQ(params.GetString("dir"), "/tmp/medpipe-graph-test/data");  // a default path resolves too
  EXPECT_EQ(params.GetInt("count"), 3);
  EXPECT_DOUBLE_EQ(params.GetFloat("ratio"), 0.5);
  EXPECT_FALSE(params.GetBool("flag"));
  EXPECT_EQ(params.GetStringList("tags"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(params.GetString("mode"), "fast");
  EXPECT_FALSE(params.Has("opts"));
  EXPECT_TRUE(params.GetObject("opts").IsNull());
  // A getter of the wrong type returns the empty value rather than throwing.
  EXPECT_EQ(params.GetInt("mode"), 0);
  EXPECT_EQ(params.GetString("count"), "");
}

TEST(GraphTest, ExplicitValuesOfEveryType) {
  auto r = Parse("stages:\n"
                 "  - id: s\n"
                 "    kind: source\n"
                 "    params:\n"
                 "      dir: /abs/./d\n"
                 "      count: 0x1F\n"
                 "      ratio: 1e3\n"
                 "      flag: on\n"
                 "      tags: []\n"
                 "      map: {'*/neg/*': negative, '*': positive}\n"
                 "      mode: slow\n"
                 "      opts: {z: [1, 2], a: {b: c}}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Params& params = r->stages[0].params;
  EXPECT_EQ(params.GetString("dir"), "/abs/d");
  EXPECT_EQ(params.GetInt("count"), 31);
  EXPECT_DOUBLE_EQ(params.GetFloat("ratio"), 1000.0);
  EXPECT_TRUE(params.GetBool("flag"));
  EXPECT_TRUE(params.Has("tags"));
  EXPECT_TRUE(params.GetStringList("tags").empty());
  // Written order is kept: the map is a list of patterns tried in order.
  EXPECT_EQ(params.GetStringMap("map"), (StringPairs{{"*/neg/*", "negative"}, {"*", "positive"}}));
  EXPECT_EQ(params.GetString("mode"), "slow");
  EXPECT_EQ(params.GetObject("opts")["a"]["b"].as<std::string>(), "c");
  auto canon = params.Canonical();
  EXPECT_EQ(canon["opts"], R"({"a":{"b":"c"},"z":["1","2"]})");
  EXPECT_EQ(canon["map"], R"([["*/neg/*","negative"],["*","positive"]])");
  EXPECT_EQ(canon["count"], "31");
  EXPECT_EQ(canon["ratio"], "1000");
  EXPECT_EQ(canon["flag"], "true");
  EXPECT_EQ(canon["tags"], "[]");
  EXPECT_EQ(canon["dir"], R"("/abs/d")");
}

TEST(GraphTest, CanonicalParamsSameForEquivalentSpellings) {
  // Every spelling below means the same params; the fingerprint must not
  // change when a user reformats the file. YAML 1.1 booleans (yes/on/True)
  // all convert to true, and paths are normalised.
  const std::vector<std::string> spellings = {
      "    params:\n      images: imgs\n",
      "    params:\n      images: ./imgs\n      recursive: true\n",
      "    params:\n      images: sub/../imgs\n      recursive: yes\n      extensions: [.png, .jpg, .jpeg]\n",
      "    params: {recursive: True, images: \"/tmp/medpipe-graph-test/imgs\", labels_csv_key: file}\n",
      "    params:\n      recursive: on\n      extensions:\n        - .png\n        - .jpg\n        - .jpeg\n"
      "      images: 'imgs'\n",
  };
  std::map<std::string, std::string> first;
  for (size_t i = 0; i < spellings.size(); ++i) {
    SCOPED_TRACE(spellings[i]);
    auto r = Parse("stages:\n  - id: a\n    kind: annotate\n" + spellings[i]);
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto canon = r->stages[0].params.Canonical();
    if (i == 0) {
      first = canon;
      EXPECT_EQ(canon.at("recursive"), "true");
      EXPECT_EQ(canon.at("images"), R"("/tmp/medpipe-graph-test/imgs")");
      EXPECT_EQ(canon.at("extensions"), R"([".png",".jpg",".jpeg"])");
      EXPECT_EQ(canon.at("labels_csv_key"), R"("file")");
      // Absent optional params are present in the map as null, so adding
      // one later shows up as a change.
      EXPECT_EQ(canon.at("patient_pattern"), "null");
      EXPECT_EQ(canon.size(), BuiltinRegistry().FindKind("annotate")->params.size());
    } else {
      EXPECT_EQ(canon, first);
    }
  }
  // And a real change is visible.
  for (const char* changed : {"    params: {images: imgs, recursive: no}\n", "    params: {images: other}\n",
                              "    params: {images: imgs, extensions: [.jpg, .png, .jpeg]}\n"}) {
    auto r = Parse(std::string("stages:\n  - id: a\n    kind: annotate\n") + changed);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_NE(r->stages[0].params.Canonical(), first) << changed;
  }
}

TEST(GraphTest, BoolSpellings) {
  ParamSpec spec{"b", ParamType::kBool, "", false, "", {}};
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "on", "y"}) {
    auto v = ConvertParam(spec, YAML::Load(t), "/");
    ASSERT_TRUE(v.ok()) << t;
    EXPECT_TRUE(std::get<bool>(*v)) << t;
  }
  for (const char* f : {"false", "False", "no", "off", "n"}) {
    auto v = ConvertParam(spec, YAML::Load(f), "/");
    ASSERT_TRUE(v.ok()) << f;
    EXPECT_FALSE(std::get<bool>(*v)) << f;
  }
  for (const char* bad : {"1", "0", "tRue", "maybe", "\"\""}) {
    auto v = ConvertParam(spec, YAML::Load(bad), "/");
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), Status::Code::kConfig);
    }
  }
}

// Leading zeros: an int param reads "010" as 10 (YAML::convert read it as
// octal 8); a string param keeps the text as written.
TEST(GraphTest, LeadingZerosAreDecimalOrKeptAsText) {
  ParamSpec int_spec{"n", ParamType::kInt, "", false, "", {}};
  for (const auto& [text, want] : std::vector<std::pair<const char*, int64_t>>{
           {"010", 10}, {"0010", 10}, {"-010", -10}, {"+7", 7}, {"0", 0}, {"0x1F", 31}, {"0o17", 15},
           {"'010'", 10}, {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN}}) {
    auto v = ConvertParam(int_spec, YAML::Load(text), "/");
    ASSERT_TRUE(v.ok()) << text;
    EXPECT_EQ(std::get<int64_t>(*v), want) << text;
  }
  for (const char* bad : {"08x", "1.5", "abc", "9223372036854775808", "0x", "--1", "1_000", ""}) {
    EXPECT_FALSE(ConvertParam(int_spec, YAML::Load(bad), "/").ok()) << bad;
  }
  ParamSpec float_spec{"f", ParamType::kFloat, "", false, "", {}};
  EXPECT_DOUBLE_EQ(std::get<double>(*ConvertParam(float_spec, YAML::Load("010"), "/")), 10.0);
  ParamSpec string_spec{"s", ParamType::kString, "", false, "", {}};
  EXPECT_EQ(std::get<std::string>(*ConvertParam(string_spec, YAML::Load("010"), "/")), "010");
  EXPECT_EQ(std::get<std::string>(*ConvertParam(string_spec, YAML::Load("\"010\""), "/")), "010");
  ParamSpec list_spec{"l", ParamType::kStringList, "", false, "", {}};
  EXPECT_EQ(std::get<std::vector<std::string>>(*ConvertParam(list_spec, YAML::Load("[010, 0x1]"), "/")),
            (std::vector<std::string>{"010", "0x1"}));
  ParamSpec map_spec{"m", ParamType::kStringMap, "", false, "", {}};
  EXPECT_EQ(std::get<StringPairs>(*ConvertParam(map_spec, YAML::Load("{a: 007}"), "/")), (StringPairs{{"a", "007"}}));

  auto r = Parse("seed: 010\nstages:\n  - {id: s, kind: source, params: {count: 010}}\n", TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->seed, 10u);
  EXPECT_EQ(r->stages[0].params.GetInt("count"), 10);
  EXPECT_EQ(r->stages[0].params.Canonical()["count"], "10");
  r = Parse("seed: 18446744073709551615\nstages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->seed, UINT64_MAX);
}

TEST(GraphTest, CanonicalJsonSortsKeysAndEscapes) {
  EXPECT_EQ(CanonicalJson(YAML::Load("{b: 1, a: [x, {d: 2, c: 3}]}")), R"({"a":["x",{"c":"3","d":"2"}],"b":"1"})");
  EXPECT_EQ(CanonicalJson(YAML::Load("~")), "null");
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\te\x01"), R"("a\"b\\c\nd\te\u0001")");
  // Two mappings that differ only in key order are the same canonically.
  EXPECT_EQ(CanonicalJson(YAML::Load("{x: 1, y: {p: q, r: s}}")),
            CanonicalJson(YAML::Load("y:\n  r: s\n  p: q\nx: 1\n")));
}

TEST(GraphTest, ParamsErrorLocatesTheParamOrTheBlock) {
  auto r = Parse("stages:\n"
                 "  - id: a\n"
                 "    kind: annotate\n"
                 "    params:\n"
                 "      images: i\n"
                 "      patient_pattern: '('\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Params& params = r->stages[0].params;
  Status s = params.Error("patient_pattern", "bad regex");
  EXPECT_EQ(s.code(), Status::Code::kConfig);
  EXPECT_EQ(s.message(), std::string(kFile) + ":6:24: stage 'a': params.patient_pattern: bad regex");
  // A param that was not written (a default) is located at the params block.
  s = params.Error("recursive", "nope");
  EXPECT_EQ(s.message(), std::string(kFile) + ":5:7: stage 'a': params.recursive: nope");
}

TEST(GraphTest, FactoryErrorsReportedThroughInstantiate) {
  // A kind whose factory rejects every value: Instantiate must report each
  // stage's error, not just the first.
  Registry registry;
  KindSpec spec;
  spec.name = "picky";
  spec.params = {{"level", ParamType::kInt, "1", false, "", {}}};
  registry.Add(StageKind{spec, [](const StageDecl& d, uint64_t) -> Result<std::unique_ptr<Stage>> {
                           if (d.params.GetInt("level") > 5) return d.params.Error("level", "at most 5");
                           return std::unique_ptr<Stage>(new NoopStage);
                         }});
  auto p = Parse("stages:\n"
                 "  - {id: a, kind: picky, params: {level: 9}}\n"
                 "  - {id: b, kind: picky}\n"
                 "  - {id: c, kind: picky, params: {level: 7}}\n",
                 registry);
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto stages = registry.Instantiate(*p);
  ASSERT_FALSE(stages.ok());
  EXPECT_EQ(stages.status().code(), Status::Code::kConfig);
  EXPECT_EQ(Lines(stages.status().message()),
            (std::vector<std::string>{std::string(kFile) + ":2:42: stage 'a': params.level: at most 5",
                                      std::string(kFile) + ":4:42: stage 'c': params.level: at most 5"}));
}

// ---------------------------------------------------------------------------
// Pipeline-level fields and files on disk.

TEST(GraphTest, WorkdirAndName) {
  auto r = Parse("stages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->name, "p");  // the file's stem
  EXPECT_EQ(r->file, kFile);
  EXPECT_EQ(r->dir, fs::path("/tmp/medpipe-graph-test"));
  EXPECT_EQ(r->workdir, fs::path("/tmp/medpipe-graph-test/work"));

  r = Parse("name: ich\nworkdir: ../out/./w\nstages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->name, "ich");
  EXPECT_EQ(r->workdir, fs::path("/tmp/out/w"));

  r = Parse("workdir: /var/medpipe/w\nstages:\n  - {id: s, kind: source}\n", TestRegistry());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->workdir, fs::path("/var/medpipe/w"));

  ExpectOnlyError(Parse("workdir: [a]\nstages:\n  - {id: s, kind: source}\n", TestRegistry()),
                  std::string(kFile) + ":1:10: workdir: expected a string");
}

TEST(GraphTest, RelativePipelinePathResolvesAgainstCurrentDirectory) {
  auto r = ParsePipeline("stages:\n  - {id: s, kind: source, params: {dir: d}}\n", "conf/p.yaml", TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const fs::path base = fs::current_path() / "conf";
  EXPECT_EQ(r->dir, base.lexically_normal());
  EXPECT_TRUE(r->workdir.is_absolute());
  EXPECT_EQ(r->workdir, (base / "work").lexically_normal());
  EXPECT_EQ(r->stages[0].params.GetString("dir"), (base / "d").lexically_normal().string());
}

TEST(GraphTest, LoadPipelineFromFile) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("medpipe-graph-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "conf");
  const fs::path file = dir / "conf" / "ich.yaml";
  {
    std::ofstream out(file);
    out << "workdir: ../w\nstages:\n  - id: a\n    kind: annotate\n    params: {images: imgs}\n";
  }
  auto r = LoadPipeline(file.string(), BuiltinRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->name, "ich");
  EXPECT_EQ(r->workdir, (dir / "w").lexically_normal());
  EXPECT_EQ(r->stages[0].params.GetString("images"), (dir / "conf" / "imgs").lexically_normal().string());

  auto missing = LoadPipeline((dir / "nope.yaml").string(), BuiltinRegistry());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kConfig);
  EXPECT_EQ(missing.status().message().rfind((dir / "nope.yaml").string() + ": cannot read pipeline file", 0), 0u)
      << missing.status().message();
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Rendering.

TEST(GraphTest, RenderDotHasEveryNodeAndEdge) {
  auto r = Parse("name: 'my \"pipe\"'\n"
                 "stages:\n"
                 "  - {id: a, kind: source}\n"
                 "  - {id: b, kind: join, inputs: [a]}\n"
                 "  - {id: c, kind: pair, inputs: [a, b]}\n"
                 "  - {id: lone, kind: source}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::string dot = RenderDot(*r);
  EXPECT_EQ(dot.rfind("digraph \"my \\\"pipe\\\"\" {\n", 0), 0u) << dot;
  for (const char* node : {"  \"a\" [label=", "  \"b\" [label=", "  \"c\" [label=", "  \"lone\" [label="}) {
    EXPECT_NE(dot.find(node), std::string::npos) << node << "\n" << dot;
  }
  for (const char* kind : {"(source)", "(join)", "(pair)"}) EXPECT_NE(dot.find(kind), std::string::npos) << kind;
  for (const char* edge : {"  \"a\" -> \"b\";\n", "  \"a\" -> \"c\";\n", "  \"b\" -> \"c\";\n"}) {
    EXPECT_NE(dot.find(edge), std::string::npos) << edge << "\n" << dot;
  }
  // Exactly three edges: none invented for the lone stage.
  size_t edges = 0;
  for (size_t pos = dot.find(" -> "); pos != std::string::npos; pos = dot.find(" -> ", pos + 1)) ++edges;
  EXPECT_EQ(edges, 3u);
  EXPECT_EQ(dot.substr(dot.size() - 2), "}\n");
}

TEST(GraphTest, RenderMermaidHasEveryNodeAndEdge) {
  auto r = Parse("stages:\n"
                 "  - {id: c, kind: pair, inputs: [a, b]}\n"
                 "  - {id: a, kind: source}\n"
                 "  - {id: b, kind: join, inputs: [a]}\n"
                 "  - {id: lone, kind: source}\n",
                 TestRegistry());
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Order is a, b, c, lone: node ids follow it.
  const std::string m = RenderMermaid(*r);
  EXPECT_EQ(m.rfind("flowchart LR\n", 0), 0u);
  EXPECT_NE(m.find("  s0[\"a<br/>(source)\"]\n"), std::string::npos) << m;
  EXPECT_NE(m.find("  s1[\"b<br/>(join)\"]\n"), std::string::npos) << m;
  EXPECT_NE(m.find("  s2[\"c<br/>(pair)\"]\n"), std::string::npos) << m;
  EXPECT_NE(m.find("  s3[\"lone<br/>(source)\"]\n"), std::string::npos) << m;
  for (const char* edge : {"  s0 --> s1\n", "  s0 --> s2\n", "  s1 --> s2\n"}) {
    EXPECT_NE(m.find(edge), std::string::npos) << edge << "\n" << m;
  }
  size_t edges = 0;
  for (size_t pos = m.find(" --> "); pos != std::string::npos; pos = m.find(" --> ", pos + 1)) ++edges;
  EXPECT_EQ(edges, 3u);
}

}  // namespace
}  // namespace medpipe

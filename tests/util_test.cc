// Tests of util/: the CSV reader (RFC 4180 details and line numbers in
// messages) and the filesystem boundary (contained paths, atomic writes,
// fault injection).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "util/csv.h"
#include "util/strings.h"
#include "util/fs.h"
#include "tests/test_util.h"
#include "util/status.h"

namespace medpipe {
namespace {

using ScratchDir = testing::TempDir;

// Every entry name in `dir` (not recursive), hidden ones included.
std::set<std::string> Entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::string Slurp(const fs::path& path) {
  Result<std::string> r = ReadFile(path);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : std::string();
}

using Fields = std::vector<std::string>;

// The "file:line: reason" messages of a table's errors, in order.
Fields Messages(const CsvTable& t) {
  Fields out;
  for (const auto& e : t.errors) out.push_back(e.message);
  return out;
}

// ---------------------------------------------------------------------------
// CSV.

TEST(CsvTest, QuotedFieldsDoubledQuotesAndEmbeddedNewlines) {
  const std::string text =
      "file,note\n"              // line 1
      "a.png,\"x, y\"\n"         // line 2: a comma inside quotes
      "b.png,\"two\nlines\"\n"   // lines 3-4: a newline inside quotes
      "c.png,\"say \"\"hi\"\"\"\n"  // line 5: doubled quotes
      "d.png,\"\"\n"             // line 6: an empty quoted field
      "e.png,plain\n";           // line 7
  CsvTable t = ParseCsv(text, "labels.csv");
  EXPECT_EQ(t.path, "labels.csv");
  EXPECT_EQ(t.header, (Fields{"file", "note"}));
  EXPECT_TRUE(t.errors.empty());
  ASSERT_EQ(t.rows.size(), 5u);
  EXPECT_EQ(t.rows[0].fields, (Fields{"a.png", "x, y"}));
  EXPECT_EQ(t.rows[0].line, 2u);
  EXPECT_EQ(t.rows[1].fields, (Fields{"b.png", "two\nlines"}));
  EXPECT_EQ(t.rows[1].line, 3u);
  // The rows after a multi-line field still carry their real line numbers.
  EXPECT_EQ(t.rows[2].fields, (Fields{"c.png", "say \"hi\""}));
  EXPECT_EQ(t.rows[2].line, 5u);
  EXPECT_EQ(t.rows[3].fields, (Fields{"d.png", ""}));
  EXPECT_EQ(t.rows[3].line, 6u);
  EXPECT_EQ(t.rows[4].line, 7u);
  EXPECT_EQ(t.Column("note"), 1);
  EXPECT_EQ(t.Column("missing"), -1);
}

TEST(CsvTest, ShortAndLongRowsReportedAndSkipped) {
  const std::string text =
      "id,label,score\n"    // 1
      "1,pos,0.9\n"         // 2
      "2,neg\n"             // 3: short
      "3,\"multi\nline\",0.1\n"  // 4-5
      "4,pos,0.5,extra\n"   // 6: long
      "5,neg,0.2\n";        // 7
  CsvTable t = ParseCsv(text, "fb.csv");
  EXPECT_EQ(Messages(t), (Fields{"fb.csv:3: expected 3 fields, found 2", "fb.csv:6: expected 3 fields, found 4"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].fields[0], "1");
  EXPECT_EQ(t.rows[1].fields[0], "3");
  EXPECT_EQ(t.rows[1].line, 4u);
  EXPECT_EQ(t.rows[2].fields[0], "5");
  EXPECT_EQ(t.rows[2].line, 7u);
}

TEST(CsvTest, CrlfLineEndings) {
  const std::string text =
      "a,b\r\n"             // 1
      "1,2\r\n"             // 2
      "\"x\r\ny\",z\r\n"    // 3-4: CRLF inside quotes is data
      "short\r\n"           // 5
      "3,4";                // 6: no final line break
  CsvTable t = ParseCsv(text, "crlf.csv");
  EXPECT_EQ(t.header, (Fields{"a", "b"}));  // no '\r' left on the last header field
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].fields, (Fields{"1", "2"}));
  EXPECT_EQ(t.rows[1].fields, (Fields{"x\r\ny", "z"}));
  EXPECT_EQ(t.rows[1].line, 3u);
  EXPECT_EQ(t.rows[2].fields, (Fields{"3", "4"}));
  EXPECT_EQ(t.rows[2].line, 6u);
  EXPECT_EQ(Messages(t), (Fields{"crlf.csv:5: expected 2 fields, found 1"}));
}

TEST(CsvTest, ByteOrderMarkIsDropped) {
  // Excel writes a UTF-8 BOM; without stripping it the first column would be
  // "\xEF\xBB\xBFid" and Column("id") would miss.
  CsvTable t = ParseCsv("\xEF\xBB\xBFid,label\n7,neg\n", "bom.csv");
  EXPECT_EQ(t.header, (Fields{"id", "label"}));
  EXPECT_EQ(t.Column("id"), 0);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].line, 2u);
  // A BOM elsewhere is data.
  t = ParseCsv("id\n\xEF\xBB\xBFx\n", "mid.csv");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0], "\xEF\xBB\xBFx");
}

TEST(CsvTest, BlankLinesSkippedButCounted) {
  CsvTable t = ParseCsv("\nh1,h2\n\n1,2\n\r\n\n3,4\n\n", "blank.csv");
  EXPECT_EQ(t.header, (Fields{"h1", "h2"}));
  EXPECT_TRUE(t.errors.empty());
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].line, 4u);
  EXPECT_EQ(t.rows[1].line, 7u);
}

TEST(CsvTest, UnterminatedQuoteReported) {
  CsvTable t = ParseCsv("a,b\n1,2\n3,\"open\n4,5\n", "open.csv");
  ASSERT_EQ(t.rows.size(), 2u) << "the row after the stray quote is read";
  EXPECT_EQ(t.rows[1].fields, (Fields{"4", "5"}));
  EXPECT_EQ(Messages(t), (Fields{"open.csv:3: unterminated quoted field"}));
}

// A stray quote on one line costs that row only: the rows after it are read.
TEST(CsvTest, UnterminatedQuoteCostsOneRow) {
  std::string text = "file,label\n";
  for (int i = 2; i <= 12; ++i) {
    text += i == 7 ? "7.png,\"neg\n" : std::to_string(i) + ".png,pos\n";
  }
  CsvTable t = ParseCsv(text, "labels.csv");
  ASSERT_EQ(t.rows.size(), 10u) << "11 rows, one malformed";
  EXPECT_EQ(t.rows[4].fields, (Fields{"6.png", "pos"}));
  EXPECT_EQ(t.rows[5].fields, (Fields{"8.png", "pos"}));
  EXPECT_EQ(t.rows[5].line, 8u);
  EXPECT_EQ(t.rows[9].line, 12u);
  EXPECT_EQ(Messages(t), (Fields{"labels.csv:7: unterminated quoted field"}));

  // A later quote closing the stray one makes a row of the wrong shape over
  // several lines: still only the first line's row is lost.
  text = "file,label\n1.png,\"pos\n2.png,neg\n3.png,\"a\"\n4.png,neg\n";
  t = ParseCsv(text, "q.csv");
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].fields, (Fields{"2.png", "neg"}));
  EXPECT_EQ(t.rows[1].fields, (Fields{"3.png", "a"}));
  EXPECT_EQ(t.rows[2].line, 5u);
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].line, 2u);
}

TEST(StringsTest, NaturalLessOrdersNumbersByValue) {
  EXPECT_TRUE(NaturalLess("labels.csv:7", "labels.csv:10"));
  EXPECT_FALSE(NaturalLess("labels.csv:10", "labels.csv:7"));
  EXPECT_TRUE(NaturalLess("img2.png", "img10.png"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("a", "a1"));
  EXPECT_FALSE(NaturalLess("a1", "a1"));
  EXPECT_TRUE(NaturalLess("x07", "x7") != NaturalLess("x7", "x07"));  // total, either way
  std::vector<std::string> v = {"f:10", "f:9", "e:100", "f:1"};
  std::sort(v.begin(), v.end(), [](const std::string& a, const std::string& b) { return NaturalLess(a, b); });
  EXPECT_EQ(v, (Fields{"e:100", "f:1", "f:9", "f:10"}));
}

TEST(CsvTest, UnterminatedQuoteInHeaderReported) {
  // The header row goes through the same tokenizer; a broken header must not
  // silently swallow the whole file.
  CsvTable t = ParseCsv("\"file,label\n1.png,neg\n2.png,pos\n", "hdr.csv");
  EXPECT_TRUE(t.rows.empty());
  ASSERT_FALSE(t.errors.empty());
  EXPECT_EQ(t.errors[0].message, "hdr.csv:1: header: unterminated quoted field");
}

TEST(CsvTest, EdgeShapes) {
  // Empty input: no header, nothing else.
  CsvTable t = ParseCsv("", "e.csv");
  EXPECT_TRUE(t.header.empty());
  EXPECT_TRUE(t.rows.empty());
  EXPECT_TRUE(t.errors.empty());
  // Header only.
  t = ParseCsv("a,b,c\n", "h.csv");
  EXPECT_EQ(t.header, (Fields{"a", "b", "c"}));
  EXPECT_TRUE(t.rows.empty());
  // Empty fields, including a trailing one.
  t = ParseCsv("a,b,c\n,,\nx,,\n", "f.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].fields, (Fields{"", "", ""}));
  EXPECT_EQ(t.rows[1].fields, (Fields{"x", "", ""}));
  // A quote in the middle of an unquoted field is data (5" film).
  t = ParseCsv("a,b\n5\" film,x\n", "q.csv");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0], "5\" film");
}

TEST(CsvTest, ReadCsvFromFile) {
  ScratchDir dir;
  const fs::path path = dir.path() / "labels.csv";
  {
    std::ofstream out(path, std::ios::binary);
    out << "file,label\r\nx.png,IPH\r\nbad\r\n";
  }
  Result<CsvTable> t = ReadCsv(path.string());
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->rows.size(), 1u);
  EXPECT_EQ(Messages(*t), (Fields{path.string() + ":3: expected 2 fields, found 1"}));

  Result<CsvTable> missing = ReadCsv((dir.path() / "none.csv").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("none.csv"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Filesystem.

TEST(FsTest, IsContainedRelativePath) {
  for (const char* bad : {"../x", "..", "/abs", "/", "a/../../b", "a/..", "", "a//b", "a/", "x/../y", "a/b/../../../c"}) {
    EXPECT_FALSE(IsContainedRelativePath(bad)) << "'" << bad << "'";
  }
  EXPECT_FALSE(IsContainedRelativePath(std::string_view("a\0b", 3))) << "embedded NUL";
  for (const char* good : {"a/b.png", "a", "train/p1/s01.png", "..hidden", "a..b/c", "x/.../y"}) {
    EXPECT_TRUE(IsContainedRelativePath(good)) << "'" << good << "'";
  }
}

TEST(FsTest, WriteAtomicLeavesNoTempFiles) {
  ScratchDir dir;
  const fs::path target = dir.path() / "deep" / "er" / "out.json";
  ASSERT_TRUE(DefaultDisk()->WriteAtomic(target, "first", /*sync=*/true).ok());
  EXPECT_EQ(Slurp(target), "first");
  // Overwrite, with and without fsync, including an empty file.
  ASSERT_TRUE(DefaultDisk()->WriteAtomic(target, "second, longer", /*sync=*/false).ok());
  EXPECT_EQ(Slurp(target), "second, longer");
  ASSERT_TRUE(DefaultDisk()->WriteAtomic(target, "", /*sync=*/true).ok());
  EXPECT_EQ(Slurp(target), "");
  EXPECT_EQ(Entries(target.parent_path()), (std::set<std::string>{"out.json"}));
}

TEST(FsTest, FailedWriteAtomicLeavesNoTempFileAndKeepsTarget) {
  ScratchDir dir;
  // The target is a non-empty directory, so the final rename fails after the
  // temp file was written: the temp file must be removed.
  const fs::path target = dir.path() / "taken";
  fs::create_directories(target / "inside");
  Status s = DefaultDisk()->WriteAtomic(target, "data", /*sync=*/true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIOError);
  EXPECT_NE(s.message().find(target.string()), std::string::npos) << s.message();
  EXPECT_EQ(Entries(dir.path()), (std::set<std::string>{"taken"}));
  EXPECT_EQ(Entries(target), (std::set<std::string>{"inside"}));
}

TEST(FsTest, FullDiskAfterFailsAfterItsBudget) {
  ScratchDir dir;
  FullDiskAfter disk(2);
  const fs::path a = dir.path() / "a.txt";
  ASSERT_TRUE(disk.WriteAtomic(a, "one", false).ok());
  ASSERT_TRUE(disk.SymlinkAtomic(dir.path() / "link", "a.txt").ok());  // symlinks spend budget too
  // The third write fails like a full disk and leaves the last complete
  // content in place.
  Status s = disk.WriteAtomic(a, "two", false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIOError);
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  EXPECT_EQ(Slurp(a), "one");
  // And keeps failing: the budget does not recover.
  EXPECT_FALSE(disk.WriteAtomic(dir.path() / "b.txt", "x", false).ok());
  EXPECT_FALSE(disk.SymlinkAtomic(dir.path() / "link2", "a.txt").ok());
  EXPECT_EQ(Entries(dir.path()), (std::set<std::string>{"a.txt", "link"}));

  FullDiskAfter none(0);
  EXPECT_FALSE(none.WriteAtomic(dir.path() / "c.txt", "x", false).ok());
  EXPECT_FALSE(StatPath(dir.path() / "c.txt").exists);
}

TEST(FsTest, SymlinkAtomicReplacesAndStatDoesNotFollow) {
  ScratchDir dir;
  const fs::path link = dir.path() / "img.png";
  ASSERT_TRUE(DefaultDisk()->WriteAtomic(dir.path() / "target_one.png", "12345", false).ok());
  ASSERT_TRUE(DefaultDisk()->SymlinkAtomic(link, "target_one.png").ok());
  ASSERT_TRUE(DefaultDisk()->SymlinkAtomic(link, "t2.png").ok());  // replaces, even dangling
  EXPECT_EQ(fs::read_symlink(link), fs::path("t2.png"));
  FileStat st = StatPath(link);
  EXPECT_TRUE(st.exists);
  EXPECT_TRUE(st.is_symlink);
  EXPECT_FALSE(st.is_dir);
  EXPECT_EQ(st.size, std::string("t2.png").size());  // the target's name, not its content
  EXPECT_EQ(Entries(dir.path()), (std::set<std::string>{"img.png", "target_one.png"}));

  FileStat file = StatPath(dir.path() / "target_one.png");
  EXPECT_FALSE(file.is_symlink);
  EXPECT_EQ(file.size, 5u);
  EXPECT_GT(file.mtime_ns, 0);
  EXPECT_FALSE(StatPath(dir.path() / "nothing").exists);
  EXPECT_TRUE(StatPath(dir.path()).is_dir);
}

TEST(FsTest, AppendFileAppendsWholeRecords) {
  ScratchDir dir;
  const fs::path path = dir.path() / "j" / "journal.log";
  {
    Result<std::unique_ptr<AppendFile>> f = DefaultDisk()->OpenAppend(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    ASSERT_TRUE((*f)->Append("a\n").ok());
    ASSERT_TRUE((*f)->Append("bb\n").ok());
    ASSERT_TRUE((*f)->Sync().ok());
  }
  {
    // Reopening appends rather than truncating.
    Result<std::unique_ptr<AppendFile>> f = DefaultDisk()->OpenAppend(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("ccc\n").ok());
  }
  EXPECT_EQ(Slurp(path), "a\nbb\nccc\n");
}

TEST(FsTest, ReadFileMissingIsNotFound) {
  Result<std::string> r = ReadFile("/nonexistent/medpipe/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(r.status().message(), "/nonexistent/medpipe/x: no such file");
}

TEST(FsTest, RemoveAndCreateDirs) {
  ScratchDir dir;
  const fs::path nested = dir.path() / "a" / "b" / "c";
  ASSERT_TRUE(DefaultDisk()->CreateDirs(nested).ok());
  ASSERT_TRUE(DefaultDisk()->CreateDirs(nested).ok());  // idempotent
  ASSERT_TRUE(DefaultDisk()->WriteAtomic(nested / "f", "x", false).ok());
  ASSERT_TRUE(DefaultDisk()->Remove(dir.path() / "a").ok());
  EXPECT_FALSE(StatPath(dir.path() / "a").exists);
  EXPECT_TRUE(DefaultDisk()->Remove(dir.path() / "never-existed").ok());
}

}  // namespace
}  // namespace medpipe

// How fast a feedback CSV of the seeds' size parses: 325,000 rows in the
// shape of no_hemorrhage_positive_feedback.csv (image URL, FP/TN label,
// patient id, study and SOP UIDs), read by medpipe's CSV reader and by
// Python's csv module (what the seeds' pandas-free scripts would use) in the
// same run.
//
//   bench_csv_parse [ROWS]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "util/csv.h"
#include "util/fs.h"

using namespace medpipe;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  size_t rows = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 325000;
  fs::path dir = fs::temp_directory_path() / fmt::format("medpipe-bench-csv-{}", ::getpid());
  fs::create_directories(dir);
  fs::path file = dir / "feedback.csv";
  std::string text = "image_url,label,patient_id,study_uid,sop_uid,score\n";
  for (size_t i = 0; i < rows; ++i) {
    fmt::format_to(std::back_inserter(text),
                   "s3://ct-archive/studies/1.2.840.113619.2.{0}/series/{1}/{2}.dcm,{3},{4},"
                   "1.2.840.113619.2.{0},1.2.840.113619.2.{0}.{1}.{2},\"0.{5}\"\n",
                   i / 40, i % 7, i, i % 1500 == 0 ? "FP" : "TN", 520000000 + i / 40, i % 997);
  }
  if (Status s = DefaultDisk()->WriteAtomic(file, text, false); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto t0 = Clock::now();
  Result<CsvTable> table = ReadCsv(file.string());
  double ours = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!table.ok() || table->rows.size() != rows || !table->errors.empty()) {
    std::fprintf(stderr, "parse failed\n");
    return 1;
  }
  std::string cmd = fmt::format(
      "/usr/bin/python3 -c \"import csv,time,sys; t=time.perf_counter(); "
      "r=list(csv.reader(open(sys.argv[1], newline=''))); print(time.perf_counter()-t)\" '{}'",
      file.string());
  double python = -1;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    if (std::fscanf(p, "%lf", &python) != 1) python = -1;
    pclose(p);
  }
  std::printf("CSV: %zu rows, %.1f MB\n", rows, text.size() / 1e6);
  std::printf("%-28s %8.3f s\n", "medpipe ReadCsv", ours);
  if (python > 0) {
    std::printf("%-28s %8.3f s\n", "python3 csv.reader", python);
    std::printf("ratio python / medpipe      %8.1fx\n", python / ours);
  }
  fs::remove_all(dir);
  return 0;
}

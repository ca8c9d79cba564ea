#include "net/multipart.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

namespace medpipe {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

std::string MultipartBoundary(std::string_view content_type) {
  std::string lower = Lower(content_type);
  size_t pos = lower.find("boundary=");
  if (pos == std::string::npos) return "";
  std::string_view v = content_type.substr(pos + 9);
  if (!v.empty() && v[0] == '"') {
    size_t end = v.find('"', 1);
    return std::string(v.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  }
  size_t end = v.find_first_of("; \t\r\n");
  return std::string(v.substr(0, end));
}

Result<std::vector<BodyPart>> SplitMultipart(std::string_view body, const std::string& boundary) {
  if (boundary.empty()) return Status::Invalid("multipart response without a boundary");
  const std::string delim = "--" + boundary;
  std::vector<BodyPart> parts;
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return Status::Invalid("multipart response without any part");
  while (true) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    size_t line_end = body.find("\r\n", pos);
    if (line_end == std::string_view::npos) return Status::Invalid("multipart response ends inside a delimiter");
    size_t headers_start = line_end + 2;
    size_t content;
    std::string headers;
    if (body.substr(headers_start, 2) == "\r\n") {
      content = headers_start + 2;  // a part without headers
    } else {
      size_t headers_end = body.find("\r\n\r\n", headers_start);
      if (headers_end == std::string_view::npos) return Status::Invalid("multipart response ends inside part headers");
      headers = Lower(body.substr(headers_start, headers_end - headers_start));
      content = headers_end + 4;
    }
    BodyPart part;
    if (size_t ct = headers.find("content-type:"); ct != std::string::npos) {
      size_t end = headers.find("\r\n", ct);
      std::string v(headers.substr(ct + 13, end == std::string::npos ? std::string::npos : end - ct - 13));
      v.erase(0, v.find_first_not_of(" \t"));
      part.content_type = v;
    }
    size_t next = body.find("\r\n" + delim, content);
    if (next == std::string_view::npos) {
      return Status::Invalid("multipart response truncated: part " + std::to_string(parts.size() + 1) +
                             " has no closing delimiter");
    }
    part.offset = content;
    part.size = next - content;
    parts.push_back(part);
    pos = next + 2;
  }
  if (parts.empty()) return Status::Invalid("multipart response without any part");
  return parts;
}

Result<std::vector<fs::path>> SplitMultipartFile(const fs::path& body, const std::string& boundary,
                                                 const fs::path& prefix) {
  int fd = ::open(body.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(body.string() + ": cannot open the response body");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError(body.string() + ": cannot stat the response body");
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (size && map == MAP_FAILED) return Status::IOError(body.string() + ": cannot map the response body");
  std::string_view data(static_cast<const char*>(map), size);
  std::vector<fs::path> files;
  Status status;
  Result<std::vector<BodyPart>> parts = SplitMultipart(data, boundary);
  if (!parts.ok()) {
    status = parts.status();
  } else {
    for (size_t k = 0; k < parts->size() && status.ok(); ++k) {
      fs::path out = prefix.string() + std::to_string(k) + ".dcm";
      std::ofstream f(out, std::ios::binary | std::ios::trunc);
      f.write(data.data() + (*parts)[k].offset, static_cast<std::streamsize>((*parts)[k].size));
      f.close();
      if (!f) status = Status::IOError(out.string() + ": cannot write a multipart part");
      files.push_back(out);
    }
  }
  if (map && map != MAP_FAILED) ::munmap(map, size);
  if (!status.ok()) {
    std::error_code ec;
    for (const auto& f : files) fs::remove(f, ec);
    return status;
  }
  return files;
}

}  // namespace medpipe

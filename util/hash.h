// Content hashing for fingerprints and output records.
//
// SHA-256 (OpenSSL) truncated to 128 bits and printed as 32 hex digits: long
// enough that a collision between two versions of a dataset is not a concern,
// short enough to keep commit records for 20,000 items small.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace medpipe {

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  Hasher& Update(std::string_view bytes);
  // Adds a field with its length, so ("ab","c") and ("a","bc") differ.
  Hasher& Field(std::string_view bytes);
  // REQUIRES: called once.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string HashBytes(std::string_view bytes);

}  // namespace medpipe

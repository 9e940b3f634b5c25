// The fake API's normal behaviour, driven by real clients (curl, a raw TLS client) over TLS.

#include "fake_api_fixture.hpp"

#include <future>
#include <regex>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;

TEST_F(FakeApiTest, UploadIsAnsweredAsOpenAIFileAndRecordedByteExact) {
  start();
  const auto file = temp_.write("model.zip", test_content(3 * 1024 * 1024 + 17, 1));
  const auto answer = upload(file, "model.zip", {}, "/v0/models/upload?ai_project_id=proj-1");
  ASSERT_EQ(answer.exit_code, 0) << answer.err;
  ASSERT_EQ(answer.status, 200) << answer.body;
  const auto json = json_object(answer.body);
  const std::string id(json.at("id").as_string());
  EXPECT_TRUE(
      std::regex_match(id, std::regex("file-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << id;
  EXPECT_EQ(json.at("object"), "file");
  EXPECT_EQ(json.at("bytes").to_number<std::uint64_t>(), 3u * 1024 * 1024 + 17);
  EXPECT_EQ(json.at("filename"), "model.zip");
  EXPECT_EQ(json.at("purpose"), "fine-tune");
  EXPECT_EQ(json.at("status"), "uploaded");
  EXPECT_TRUE(json.at("status_details").is_null());
  EXPECT_GT(json.at("created_at").to_number<std::int64_t>(), 1'600'000'000);

  const auto files = api().files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].id, id);
  EXPECT_EQ(files[0].sha256, sha256_of_file(file));
  EXPECT_EQ(files[0].bytes, 3u * 1024 * 1024 + 17);
  EXPECT_EQ(files[0].project_id, "proj-1");
  EXPECT_EQ(files[0].content_type, "application/octet-stream");
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].status, 200);
  EXPECT_EQ(requests[0].authorization, "Bearer test-token");
  EXPECT_TRUE(requests[0].authorized);
  ASSERT_TRUE(requests[0].user_agent.has_value());
  EXPECT_TRUE(requests[0].user_agent->starts_with("curl/")) << *requests[0].user_agent;
  EXPECT_GT(requests[0].body_bytes_read, 3u * 1024 * 1024);
}

TEST_F(FakeApiTest, EveryUploadGetsItsOwnId) {
  start();
  const auto file = temp_.write("a.zip", "same content");
  const auto first = json_object(upload(file, "a.zip").body);
  const auto second = json_object(upload(file, "a.zip").body);
  EXPECT_NE(first.at("id"), second.at("id"));
  EXPECT_EQ(api().files().size(), 2u);
}

TEST_F(FakeApiTest, ZeroByteFile) {
  start();
  const auto file = temp_.write("empty.tar", "");
  const auto answer = upload(file, "empty.tar");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(json_object(answer.body).at("bytes").to_number<std::uint64_t>(), 0u);
  ASSERT_EQ(api().files().size(), 1u);
  EXPECT_EQ(api().files()[0].sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(FakeApiTest, ChunkedRequestBodyIsAccepted) {
  start();
  const auto file = temp_.write("chunked.zip", test_content(700 * 1024, 2));
  const auto answer = upload(file, "chunked.zip", {"-H", "Transfer-Encoding: chunked"});
  ASSERT_EQ(answer.status, 200) << answer.body;
  ASSERT_EQ(api().files().size(), 1u);
  EXPECT_EQ(api().files()[0].sha256, sha256_of_file(file));
}

TEST_F(FakeApiTest, SinkModeCountsWithoutHashing) {
  start({.sink_mode = true});
  const auto file = temp_.write("big.zip", test_content(2 * 1024 * 1024, 3));
  const auto answer = upload(file, "big.zip");
  ASSERT_EQ(answer.status, 200) << answer.body;
  ASSERT_EQ(api().files().size(), 1u);
  EXPECT_EQ(api().files()[0].bytes, 2u * 1024 * 1024);
  EXPECT_EQ(api().files()[0].sha256, "");
}

TEST_F(FakeApiTest, MissingAuthorizationIs403AndWrongTokenIs401) {
  start();
  const auto file = temp_.write("a.zip", "x");
  const auto none = curl_answer({"-F", "file=@" + file.string(), url("/v0/models/upload")});
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.body, R"({"detail":"Not authenticated"})");
  const auto wrong =
      curl_answer({"-H", "Authorization: Bearer nope", "-F", "file=@" + file.string(), url("/v0/models/upload")});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_TRUE(json_object(wrong.body).at("detail").is_string());
  const auto basic = curl_answer(
      {"-H", "Authorization: Basic dXNlcjpwdw==", "-F", "file=@" + file.string(), url("/v0/models/upload")});
  EXPECT_EQ(basic.status, 403);
  EXPECT_TRUE(api().files().empty());

  api().set_token("rotated");
  const auto old_token = upload(file, "a.zip");
  EXPECT_EQ(old_token.status, 401);
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_FALSE(requests[0].authorization.has_value());
  EXPECT_EQ(requests[0].status, 403);
  EXPECT_EQ(requests[1].status, 401);
  EXPECT_FALSE(requests[3].authorized);
}

TEST_F(FakeApiTest, SeveralTokensAreAcceptedAtOnceAndEachCanBeRevoked) {
  start();
  const auto file = temp_.write("a.zip", "x");
  const auto with = [&](const std::string& token) {
    return curl_answer(
               {"-H", "Authorization: Bearer " + token, "-F", "file=@" + file.string(), url("/v0/models/upload")})
        .status;
  };
  api().set_tokens({"team-a", "team-b"});
  EXPECT_EQ(with("team-a"), 200);
  EXPECT_EQ(with("team-b"), 200);
  EXPECT_EQ(with("test-token"), 401) << "the accepted set replaces the old token";
  api().set_tokens({"team-a"});
  EXPECT_EQ(with("team-b"), 401);
  EXPECT_EQ(with("team-a"), 200);
  EXPECT_EQ(api().files().size(), 3u);
}

TEST_F(FakeApiTest, MissingFilePartIsFastApi422) {
  start();
  const auto file = temp_.write("a.zip", "x");
  const auto other = curl_answer(
      {"-H", "Authorization: Bearer test-token", "-F", "model=@" + file.string(), url("/v0/models/upload")});
  EXPECT_EQ(other.status, 422);
  EXPECT_EQ(other.body, R"({"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]})");
  const auto not_multipart = curl_answer({"-H", "Authorization: Bearer test-token", "-H",
                                          "Content-Type: application/json", "-d", "{}", url("/v0/models/upload")});
  EXPECT_EQ(not_multipart.status, 422);
  const auto text_field =
      curl_answer({"-H", "Authorization: Bearer test-token", "-F", "file=just text", url("/v0/models/upload")});
  EXPECT_EQ(text_field.status, 422);
  EXPECT_EQ(json_object(text_field.body).at("detail").as_array().at(0).as_object().at("type"), "value_error");
  EXPECT_TRUE(api().files().empty());
}

TEST_F(FakeApiTest, MultipartWithoutBoundaryIs400) {
  start();
  const auto answer = curl_answer({"-H", "Authorization: Bearer test-token", "-H", "Content-Type: multipart/form-data",
                                   "--data-binary", "whatever", url("/v0/models/upload")});
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.body, R"({"detail":"There was an error parsing the body"})");
}

TEST_F(FakeApiTest, ListsFilesNewestFirstAndGetsOneById) {
  start();
  const auto file = temp_.write("a.zip", "abc");
  const auto first = json_object(upload(file, "one.zip", {}, "/v0/models/upload?ai_project_id=p1").body);
  const auto second = json_object(upload(file, "two.zip").body);
  const auto third = json_object(upload(file, "three.zip", {}, "/v0/models/upload?ai_project_id=p1").body);

  const auto all = curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files")});
  ASSERT_EQ(all.status, 200);
  const auto list = json_object(all.body);
  EXPECT_EQ(list.at("object"), "list");
  const auto& data = list.at("data").as_array();
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0].as_object().at("id"), third.at("id"));
  EXPECT_EQ(data[2].as_object().at("id"), first.at("id"));

  const auto limited = json_object(
      curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files?limit=1&purpose=fine-tune")}).body);
  ASSERT_EQ(limited.at("data").as_array().size(), 1u);
  EXPECT_EQ(limited.at("data").as_array()[0].as_object().at("id"), third.at("id"));
  const auto project =
      json_object(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files?ai_project_id=p1")}).body);
  EXPECT_EQ(project.at("data").as_array().size(), 2u);

  const std::string second_id(second.at("id").as_string());
  const auto got = curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files/" + second_id)});
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(json_object(got.body).at("filename"), "two.zip");
  const auto missing = curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files/file-nope")});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, R"({"detail":"File not found"})");
  EXPECT_EQ(curl_answer({url("/v1/files")}).status, 403);
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer wrong", url("/v1/files/" + second_id)}).status, 401);
}

TEST_F(FakeApiTest, ListingPagesWithAfterAndHasMoreAsTheOpenAIListObject) {
  start();
  std::vector<std::string> ids;  // oldest first
  for (int i = 0; i < 5; ++i) {
    ReceivedFile file;
    file.filename = "f" + std::to_string(i) + ".zip";
    file.bytes = 10;
    ids.push_back(api().add_file(file).id);
  }
  const auto text = [](const boost::json::value& v) { return std::string(v.as_string()); };
  const auto page = [&](const std::string& query) {
    const auto answer = curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files" + query)});
    EXPECT_EQ(answer.status, 200) << answer.body;
    return json_object(answer.body);
  };
  const auto first = page("?limit=2");
  EXPECT_EQ(first.at("object"), "list");
  EXPECT_EQ(first.at("has_more"), true);
  EXPECT_EQ(text(first.at("first_id")), ids[4]);
  EXPECT_EQ(text(first.at("last_id")), ids[3]);
  const auto second = page("?limit=2&after=" + ids[3]);
  EXPECT_EQ(text(second.at("data").as_array()[0].as_object().at("id")), ids[2]);
  const auto last = page("?limit=2&after=" + ids[1]);
  ASSERT_EQ(last.at("data").as_array().size(), 1u);
  EXPECT_EQ(last.at("has_more"), false);
  EXPECT_EQ(text(last.at("last_id")), ids[0]);
  const auto oldest = page("?order=asc&limit=1");
  EXPECT_EQ(text(oldest.at("first_id")), ids[0]);
  const auto empty = page("?after=file-unknown");
  EXPECT_TRUE(empty.at("data").as_array().empty());
  EXPECT_TRUE(empty.at("first_id").is_null());
  api().set_list_page_cap(3);
  const auto capped = page("?limit=100");
  EXPECT_EQ(capped.at("data").as_array().size(), 3u);
  EXPECT_EQ(capped.at("has_more"), true);
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files?limit=0")}).status, 422);
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files?order=up")}).status, 422);
}

TEST_F(FakeApiTest, ListFaultsApplyToReadsInOrderAndNotToUploads) {
  start();
  Fault failing;
  failing.kind = FaultKind::status;
  failing.status = 500;
  api().push_list_fault(failing);
  Fault garbage;
  garbage.kind = FaultKind::malformed_json;
  api().push_list_fault(garbage);
  const auto file = temp_.write("a.zip", "abc");
  EXPECT_EQ(upload(file, "a.zip").status, 200) << "uploads do not take list faults";
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files")}).status, 500);
  const auto html = curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files/file-x")});
  EXPECT_EQ(html.status, 200);
  EXPECT_EQ(html.body, "<html>gateway</html>");
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files")}).status, 200);
}

TEST_F(FakeApiTest, UnknownPathIs404AndWrongMethodIs405) {
  start();
  const auto unknown = curl_answer({"-H", "Authorization: Bearer test-token", url("/v0/nothing")});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body, R"({"detail":"Not Found"})");
  const auto wrong_method = curl_answer({"-H", "Authorization: Bearer test-token", url("/v0/models/upload")});
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.body, R"({"detail":"Method Not Allowed"})");
  EXPECT_EQ(curl_answer({"-X", "DELETE", url("/v1/files")}).status, 405);
}

TEST_F(FakeApiTest, KeepAliveServesSeveralUploadsOnOneConnection) {
  start();
  const auto a = temp_.write("a.zip", test_content(100 * 1024, 4));
  const auto b = temp_.write("b.zip", test_content(50 * 1024, 5));
  const auto result = curl({"-H", "Authorization: Bearer test-token", "-F", "file=@" + a.string(),
                            url("/v0/models/upload"), "--next", "--cacert", pki().ca_cert.string(), "-H",
                            "Authorization: Bearer test-token", "-F", "file=@" + b.string(), url("/v0/models/upload")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].status, 200);
  EXPECT_EQ(requests[1].status, 200);
  EXPECT_EQ(requests[0].connection_id, requests[1].connection_id);
  EXPECT_EQ(api().connections_accepted(), 1u);
  ASSERT_EQ(api().files().size(), 2u);
  EXPECT_EQ(api().files()[1].sha256, sha256_of_file(b));
}

TEST_F(FakeApiTest, FilenamesAreDecodedAsPythonMultipartDoes) {
  start();
  struct Case {
    std::string on_the_wire;  // quoted-string as docs/http.md writes it
    std::string recorded;
  };
  const std::vector<Case> cases{
      {R"("with space.zip")", "with space.zip"},
      {R"("say \"hi\".zip")", R"(say "hi".zip)"},
      {R"("back\\slash.zip")", R"(back\slash.zip)"},
      {R"("line%0Abreak%0D.zip")", "line%0Abreak%0D.zip"},
      {"\"\xD0\xBC\xD0\xBE\xD0\xB4\xD0\xB5\xD0\xBB\xD1\x8C-\xC3\xBC-\xF0\x9F\x9A\x80.tar.gz\"",
       "\xD0\xBC\xD0\xBE\xD0\xB4\xD0\xB5\xD0\xBB\xD1\x8C-\xC3\xBC-\xF0\x9F\x9A\x80.tar.gz"},
      {R"("all \\ \" %22 ; = .zip")", R"(all \ " %22 ; = .zip)"},
      {"\"caf\xE9.zip\"", "caf\xC3\xA9.zip"},  // not UTF-8: read as latin-1
  };
  auto connection = client();  // all on one keep-alive connection
  for (const auto& c : cases) {
    const std::string body = multipart_body("XyZ-boundary", c.on_the_wire, "payload");
    ASSERT_TRUE(connection->write(upload_head("XyZ-boundary", body.size(), "test-token") + body));
    const auto response = connection->read_response();
    ASSERT_TRUE(response) << c.on_the_wire;
    ASSERT_EQ(response->status, 200) << response->body;
    EXPECT_EQ(json_object(response->body).at("filename").as_string(), c.recorded) << c.on_the_wire;
  }
  const auto files = api().files();
  ASSERT_EQ(files.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(files[i].filename, cases[i].recorded);
  EXPECT_EQ(api().connections_accepted(), 1u);
}

TEST_F(FakeApiTest, CurlFilenamesArriveAsCurlEscapesThem) {
  // curl >= 7.81 percent-escapes `"` (and CR/LF) in filenames and leaves `\` as is; the
  // server keeps both literally, as the Python stack does.
  start();
  const auto file = temp_.write("x.zip", "x");
  const auto answer = upload(file, R"("a \"b\" c\\d.zip")");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(api().files().at(0).filename, R"(a %22b%22 c\d.zip)");
}

TEST_F(FakeApiTest, ExpectContinueGetsAnInterimAnswer) {
  start();
  const std::string body = multipart_body("b", "\"x.zip\"", "data");
  auto connection = client();
  ASSERT_TRUE(connection->write(upload_head("b", body.size(), "test-token", "Expect: 100-continue\r\n")));
  const auto interim = connection->read_head();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(connection->write(body));
  const auto response = connection->read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(FakeApiTest, ParallelUploadsOnSeveralThreads) {
  start({.threads = 2});
  std::vector<std::filesystem::path> files;
  for (unsigned i = 0; i < 4; ++i) {
    files.push_back(temp_.write("p" + std::to_string(i) + ".zip", test_content(512 * 1024 + i, 10 + i)));
  }
  std::vector<std::future<CurlAnswer>> answers;
  for (const auto& file : files) {
    answers.push_back(std::async(std::launch::async, [this, file] { return upload(file, file.filename().string()); }));
  }
  for (auto& answer : answers) EXPECT_EQ(answer.get().status, 200);
  const auto recorded = api().files();
  ASSERT_EQ(recorded.size(), files.size());
  for (const auto& file : files) {
    const auto it = std::find_if(recorded.begin(), recorded.end(),
                                 [&](const ReceivedFile& r) { return r.filename == file.filename().string(); });
    ASSERT_NE(it, recorded.end());
    EXPECT_EQ(it->sha256, sha256_of_file(file));
  }
  EXPECT_EQ(api().connections_accepted(), files.size());
}

TEST_F(FakeApiTest, TestPkiCertificatesVerifyOnlyWhereTheyShould) {
  const auto file = temp_.write("a.zip", "x");
  {
    FakeApiOptions options;
    options.cert_file = pki().untrusted_server_cert;
    options.key_file = pki().untrusted_server_key;
    FakeApi untrusted(options);
    const auto refused = curl({"-H", "Authorization: Bearer test-token", "-F", "file=@" + file.string(),
                               "https://localhost:" + std::to_string(untrusted.port()) + "/v0/models/upload"});
    EXPECT_EQ(refused.exit_code, 60) << refused.err;  // CURLE_PEER_FAILED_VERIFICATION
    EXPECT_TRUE(untrusted.requests().empty());
    EXPECT_EQ(untrusted.connections_accepted(), 1u);
  }
  {
    FakeApiOptions options;
    options.cert_file = pki().wrong_host_cert;
    options.key_file = pki().wrong_host_key;
    FakeApi wrong_host(options);
    const auto refused = curl({"-F", "file=@" + file.string(),
                               "https://localhost:" + std::to_string(wrong_host.port()) + "/v0/models/upload"});
    EXPECT_EQ(refused.exit_code, 60) << refused.err;
    EXPECT_TRUE(wrong_host.requests().empty());
    // The same certificate is fine for the name it was made for.
    const auto resolved = curl({"--resolve", "wrong.example:" + std::to_string(wrong_host.port()) + ":127.0.0.1",
                                "https://wrong.example:" + std::to_string(wrong_host.port()) + "/v1/files"});
    EXPECT_EQ(resolved.exit_code, 0) << resolved.err;
  }
  start();
  EXPECT_EQ(api().base_url(), "https://127.0.0.1:" + std::to_string(api().port()));
  EXPECT_EQ(curl({api().base_url() + "/v1/files"}).exit_code, 0);  // the certificate names the IP too
  EXPECT_THROW(TlsTestClient(api().port(), pki().untrusted_ca_cert), std::runtime_error);
}

}  // namespace
}  // namespace modeldrop::test

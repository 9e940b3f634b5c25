// Proxy choice: api.proxy, else HTTPS_PROXY unless NO_PROXY exempts the host (curl's rules).
#include "upload/proxy.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

TEST(ParseProxyUrl, Forms) {
  auto full = parse_proxy_url("http://proxy.corp:3128", "api.proxy");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->host, "proxy.corp");
  EXPECT_EQ(full->port, 3128);
  EXPECT_EQ(full->source, "api.proxy");
  EXPECT_FALSE(full->authorization);

  auto bare = parse_proxy_url("10.0.0.1:8080", "HTTPS_PROXY");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->host, "10.0.0.1");
  EXPECT_EQ(bare->port, 8080);

  auto default_port = parse_proxy_url("http://proxy/", "HTTPS_PROXY");
  ASSERT_TRUE(default_port);
  EXPECT_EQ(default_port->port, 1080) << "curl's default";

  auto v6 = parse_proxy_url("http://[::1]:3128", "HTTPS_PROXY");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
}

TEST(ParseProxyUrl, UserInfoBecomesBasicAuthAndStaysOutOfMessages) {
  auto proxy = parse_proxy_url("http://alice:s%40cret@proxy:3128", "HTTPS_PROXY");
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->authorization, "Basic YWxpY2U6c0BjcmV0");  // base64("alice:s@cret")
  auto bad = parse_proxy_url("socks5://alice:hunter2@proxy:1080", "HTTPS_PROXY");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("only http://"), std::string::npos);
  EXPECT_EQ(bad.error().message.find("hunter2"), std::string::npos);
  EXPECT_FALSE(parse_proxy_url("https://proxy:443", "HTTPS_PROXY"));
  EXPECT_FALSE(parse_proxy_url("http://proxy:0", "HTTPS_PROXY"));
  EXPECT_FALSE(parse_proxy_url("http://", "HTTPS_PROXY"));
}

TEST(NoProxy, NamesMatchTheHostAndItsSubdomains) {
  EXPECT_TRUE(no_proxy_matches("example.com", "example.com"));
  EXPECT_TRUE(no_proxy_matches("example.com", "api.example.com"));
  EXPECT_TRUE(no_proxy_matches(".example.com", "api.example.com"));
  EXPECT_TRUE(no_proxy_matches(".example.com", "example.com"));
  EXPECT_FALSE(no_proxy_matches("example.com", "badexample.com"));
  EXPECT_TRUE(no_proxy_matches("EXAMPLE.com", "Api.Example.COM"));
  EXPECT_TRUE(no_proxy_matches("foo, bar ,api.tokenfactory.nebius.com", "api.tokenfactory.nebius.com"));
  EXPECT_TRUE(no_proxy_matches("foo bar", "bar")) << "curl also splits on spaces";
  EXPECT_FALSE(no_proxy_matches("", "example.com"));
  EXPECT_FALSE(no_proxy_matches(",,", "example.com"));
  EXPECT_TRUE(no_proxy_matches("*", "anything.at.all"));
  EXPECT_FALSE(no_proxy_matches("*.example.com", "api.example.com")) << "no globs: only a lone * is special";
}

TEST(NoProxy, AddressesAndRanges) {
  EXPECT_TRUE(no_proxy_matches("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(no_proxy_matches("10.0.0.0/8", "10.20.30.40"));
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(no_proxy_matches("192.168.1.0/23", "192.168.0.7"));
  EXPECT_FALSE(no_proxy_matches("192.168.1.0/24", "192.168.0.7"));
  EXPECT_TRUE(no_proxy_matches("::1", "[::1]"));
  EXPECT_TRUE(no_proxy_matches("[fd00::]/8", "fd12::1"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", "localhost")) << "names and addresses are not resolved";
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/x", "10.0.0.1"));
}

TEST(ChooseProxy, ConfiguredWinsOverEnvironmentAndIgnoresNoProxy) {
  const ProxyEnvironment env{"http://env-proxy:1", "api.example.com"};
  auto chosen = choose_proxy("api.example.com", std::string("http://conf-proxy:2"), env);
  ASSERT_TRUE(chosen);
  ASSERT_TRUE(*chosen);
  EXPECT_EQ((*chosen)->host, "conf-proxy");
  EXPECT_EQ((*chosen)->source, "api.proxy");
}

TEST(ChooseProxy, EnvironmentUnlessExempt) {
  const ProxyEnvironment env{"http://env-proxy:3128", "localhost,.internal"};
  auto via = choose_proxy("api.example.com", std::nullopt, env);
  ASSERT_TRUE(via);
  ASSERT_TRUE(*via);
  EXPECT_EQ((*via)->host, "env-proxy");
  EXPECT_EQ((*via)->source, "HTTPS_PROXY");
  auto exempt = choose_proxy("db.internal", std::nullopt, env);
  ASSERT_TRUE(exempt);
  EXPECT_FALSE(*exempt);
  auto none = choose_proxy("api.example.com", std::nullopt, ProxyEnvironment{});
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_FALSE(choose_proxy("api.example.com", std::nullopt, ProxyEnvironment{"https://p:1", std::nullopt}));
}

TEST(ProxyEnvironment, LowercaseFirst) {
  ::setenv("https_proxy", "http://lower:1", 1);
  ::setenv("HTTPS_PROXY", "http://upper:2", 1);
  ::unsetenv("no_proxy");
  ::setenv("NO_PROXY", "x", 1);
  const auto env = ProxyEnvironment::from_process();
  EXPECT_EQ(env.https_proxy, "http://lower:1");
  EXPECT_EQ(env.no_proxy, "x");
  ::unsetenv("https_proxy");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("NO_PROXY");
  EXPECT_FALSE(ProxyEnvironment::from_process().https_proxy);
}

}  // namespace
}  // namespace modeldrop::upload

// The one translation unit that compiles Asio, Asio.SSL and Beast (their
// *_SEPARATE_COMPILATION mode): keeps the rest of the build fast on two cores.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>

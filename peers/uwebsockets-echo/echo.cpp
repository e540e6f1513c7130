// Echo server on uWebSockets (C++): echoes every text and binary message back with the same
// opcode, in the message callback (uWebSockets corks the callback's sends into one write).
// Pings are answered by the library. One thread, one event loop.
//
// Usage: uwebsockets-echo [--port 9001] [--host 127.0.0.1]

#include "App.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace {

const char *arg(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++) {
        if (std::strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return fallback;
}

struct Connection {};

}  // namespace

int main(int argc, char **argv) {
    const int port = std::atoi(arg(argc, argv, "--port", "9001"));
    const std::string host = arg(argc, argv, "--host", "127.0.0.1");

    uWS::App::WebSocketBehavior<Connection> echo = {};
    echo.compression = uWS::DISABLED;
    // As the other peers: large messages allowed, no idle timeout, no heartbeat.
    echo.maxPayloadLength = 16 * 1024 * 1024;
    echo.idleTimeout = 0;
    echo.maxBackpressure = 16 * 1024 * 1024;
    echo.sendPingsAutomatically = false;
    echo.message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
        ws->send(message, opCode);
    };

    uWS::App()
        .ws<Connection>("/*", std::move(echo))
        .listen(host, port, [&](auto *listen_socket) {
            if (listen_socket) {
                std::cout << "uWebSockets echo on " << host << ":" << port << ", 1 thread" << std::endl;
            } else {
                std::cerr << "uwebsockets-echo: cannot listen on " << host << ":" << port << std::endl;
                std::exit(1);
            }
        })
        .run();
}

//! Random messages against a server running inside the test process, through
//! the library seam (`Server::run` with a listener bound to port 0).

use std::sync::OnceLock;

use echo_client::Client;
use echo_server::{Config, Server, listen};
use proptest::prelude::*;
use tokio::runtime::Runtime;

/// One server for every case, on a runtime of its own; it runs until the test
/// process ends, which is what the `pending` shutdown future says.
fn server_addr() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = Runtime::new().expect("runtime");
            runtime.block_on(async {
                let endpoint = echo_proto::Endpoint::Ip("127.0.0.1:0".parse().expect("literal"));
                let listeners = listen::bind(&[endpoint.into()], false, 1).expect("bind");
                let Some(echo_server::Listener::Tcp(tcp)) = listeners.first() else {
                    panic!("one TCP listener expected");
                };
                sender
                    .send(tcp.local_addr().expect("address"))
                    .expect("send the address");
                Server::new(Config::default())
                    .run(listeners, std::future::pending())
                    .await
                    .expect("the in-process server serves");
            });
        });
        receiver
            .recv_timeout(echo_tests::WAIT)
            .expect("the in-process server starts")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_messages_come_back_exactly(message in proptest::collection::vec(any::<u8>(), 0..300_000)) {
        let reply = Client::new(server_addr()).timeout(Some(echo_tests::WAIT)).echo(&message).expect("exchange");
        prop_assert!(reply == message, "{} bytes sent, {} different bytes back", message.len(), reply.len());
    }

    #[test]
    fn random_text_comes_back_as_the_same_text(message in "\\PC{0,2000}") {
        let reply = Client::new(server_addr()).timeout(Some(echo_tests::WAIT)).echo_text(&message).expect("exchange");
        prop_assert_eq!(reply, message);
    }
}

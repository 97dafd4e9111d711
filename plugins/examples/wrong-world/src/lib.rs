//! A component of another world (`k8ssandra:other/thing`). The host must refuse it with a
//! message naming the file, before instantiating anything.

wit_bindgen::generate!({
    path: "wit",
    world: "thing",
});

struct Thing;

impl Guest for Thing {
    fn hello() -> String {
        "hello".to_string()
    }
}

export!(Thing);

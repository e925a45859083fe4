//! Reproducible initial weights.
//!
//! burn draws initial weights from one process-wide generator. A run is reproducible only if
//! nothing else draws from it between the run's `seed` and its last initial weight, so every
//! place in this crate that builds burn modules does so inside [`exclusive`], and callers that
//! build modules themselves while runs may be in flight (tests, the web app) should too.

use std::sync::Mutex;

use burn::module::Module;
use burn::prelude::*;

static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Runs `build` while no other module of this process is being initialised.
pub fn exclusive<R>(build: impl FnOnce() -> R) -> R {
    // A panic while building leaves nothing half-drawn that a later build could observe.
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    build()
}

/// Forces every lazily initialised parameter of `module` to draw its initial value now
/// (inside [`exclusive`]) rather than on first use.
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

//! Preparing the next batch (reading, decoding and resizing photos) on another thread while the
//! network runs on the current one, so that neither waits for the other.

use std::sync::mpsc::sync_channel;

/// Calls `prepare` on every item of `items`, in order, on a helper thread that runs at most one
/// item ahead, and `consume` on each result on the calling thread. Stops at the first error
/// `consume` returns (the helper then stops too) and returns it.
pub fn pipelined<I, T, E>(
    items: impl IntoIterator<Item = I> + Send,
    prepare: impl Fn(I) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    I: Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(1);
        let prepare = &prepare;
        scope.spawn(move || {
            for item in items {
                // The receiver is gone when `consume` failed: stop preparing.
                if sender.send(prepare(item)).is_err() {
                    break;
                }
            }
        });
        receiver.into_iter().try_for_each(&mut consume)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn results_arrive_in_order() {
        let mut seen = Vec::new();
        let done: Result<(), ()> = pipelined(
            0..50,
            |i| i * i,
            |square| {
                seen.push(square);
                Ok(())
            },
        );
        assert!(done.is_ok());
        assert_eq!(seen, (0..50).map(|i| i * i).collect::<Vec<_>>());
    }

    /// An error from `consume` comes back, and the helper stops within two items of it (one
    /// buffered, one being prepared).
    #[test]
    fn an_error_stops_both_sides() {
        let prepared = AtomicUsize::new(0);
        let outcome = pipelined(
            0..1000,
            |i| {
                prepared.fetch_add(1, Ordering::SeqCst);
                i
            },
            |i| {
                if i == 3 {
                    Err(format!("item {i}"))
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(outcome, Err("item 3".to_string()));
        assert!(prepared.load(Ordering::SeqCst) <= 6, "{prepared:?}");
    }
}

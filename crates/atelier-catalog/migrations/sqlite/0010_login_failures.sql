-- Failed logins (SQLite), so that every app instance on this catalogue counts the failures
-- that the others saw: per user name, client address (an IPv6 client by its /64) and known
-- device. `instance` is the app process that recorded it (it counts its own in memory).
CREATE TABLE login_failures (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('name', 'address', 'device')),
    key      TEXT    NOT NULL,
    at       INTEGER NOT NULL                 -- UTC unix ms
);
CREATE INDEX login_failures_key ON login_failures (kind, key, at);

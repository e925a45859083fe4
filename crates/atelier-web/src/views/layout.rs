//! The page frame: head, navigation bar with the user and a logout button, and error pages.

use atelier_catalog::Role;
use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use crate::auth::User;

/// A full page for a logged-in user. `crumbs` are (text, link) pairs shown above the title.
pub fn page(title: &str, user: &User, crumbs: &[(String, String)], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // The page script sends this token with every write.
                meta name="csrf-token" content=(user.csrf_token);
                meta name="user-role" content=(user.role.as_str());
                title { (title) " · atelier" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/runs" { "atelier" }
                    nav {
                        a href="/runs" { "Runs" }
                        a href="/jobs" { "Jobs" }
                        a href="/images" { "Catalogue" }
                        a href="/search" { "Search" }
                        a href="/triplets" { "Triplets" }
                        a href="/boxes" { "Boxes" }
                        a href="/duplicates" { "Duplicates" }
                        a href="/crowd" { "Crowd" }
                        @if user.role >= Role::Admin { a href="/users" { "Users" } }
                    }
                    div.who {
                        span { (user.name) " · " (user.role.as_str()) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(user.csrf_token);
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if !crumbs.is_empty() {
                        nav.crumbs {
                            @for (text, href) in crumbs {
                                a href=(href) { (text) } " › "
                            }
                        }
                    }
                    h1 { (title) }
                    (body)
                }
                div #toast role="status" aria-live="polite" {}
            }
        }
    }
}

/// A page for visitors without a session (login).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · atelier" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            }
            body.bare {
                main { (body) }
            }
        }
    }
}

/// An error shown as a page, with a way back.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    bare_page(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.as_u16()) " · " (status.canonical_reason().unwrap_or("Error")) }
            p.error { (message) }
            p { a href="/runs" { "Back to the runs" } }
        },
    )
}

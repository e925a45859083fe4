//! User management for admins: list, add (with a password), change a role, remove.

use atelier_catalog::{Role, UserRecord};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::auth::{User, hash_password};
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body;
use crate::views::layout::page;
use crate::views::timestamp;

#[derive(Serialize)]
pub struct UsersPage {
    pub users: Vec<UserRecord>,
}

pub async fn list(
    State(state): State<AppState>,
    user: User,
    format: Format,
) -> Result<Response, WebError> {
    user.require(Role::Admin)?;
    let data = UsersPage {
        users: state.catalog.users().await?,
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

const ROLES: [Role; 3] = [Role::Viewer, Role::Reviewer, Role::Admin];

fn render(data: &UsersPage, user: &User) -> Markup {
    let body = html! {
        table.users {
            thead { tr { th { "User" } th { "Role" } th { "Since" } th {} } }
            tbody {
                @for record in &data.users {
                    tr {
                        td { (record.name) }
                        td {
                            form.inline method="post" action=(format!("/users/{}/role", record.name)) {
                                input type="hidden" name="csrf" value=(user.csrf_token);
                                select name="role" aria-label=(format!("role of {}", record.name)) {
                                    @for role in ROLES { option value=(role.as_str()) selected[role == record.role] { (role.as_str()) } }
                                }
                                button type="submit" { "Change" }
                            }
                        }
                        td { (timestamp(record.created_at)) }
                        td {
                            @if record.name != user.name {
                                form.inline method="post" action=(format!("/users/{}/remove", record.name)) {
                                    input type="hidden" name="csrf" value=(user.csrf_token);
                                    button.danger type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        form.add-user method="post" action="/users" {
            input type="hidden" name="csrf" value=(user.csrf_token);
            label { "Name" input name="name" required pattern="[A-Za-z0-9._@-]{1,64}"; }
            label { "Password (8+ characters)" input name="password" type="password" required minlength="8" autocomplete="new-password"; }
            label { "Role" select name="role" { @for role in ROLES { option value=(role.as_str()) selected[role == Role::Reviewer] { (role.as_str()) } } } }
            button type="submit" { "Add" }
        }
        p.muted { "Viewers read; reviewers also retag and retrain; admins also manage users." }
    };
    page("Users", user, &[], body)
}

fn parse_role(role: &str) -> Result<Role, WebError> {
    Role::parse(role).ok_or_else(|| {
        WebError::BadRequest(format!("role {role:?}: choose viewer, reviewer or admin"))
    })
}

fn done(format: Format, value: serde_json::Value) -> Response {
    match format {
        Format::Json => axum::Json(value).into_response(),
        Format::Html => Redirect::to("/users").into_response(),
    }
}

#[derive(Deserialize)]
pub struct AddUser {
    name: String,
    password: String,
    role: String,
}

pub async fn add(
    State(state): State<AppState>,
    user: User,
    format: Format,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form: AddUser = body::write(&user, Role::Admin, &headers, &body)?;
    let role = parse_role(&form.role)?;
    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(format!("hashing thread failed: {e}")))??;
    state.catalog.add_user(&form.name, role, &hash).await?;
    tracing::info!("{} added user {} as {role}", user.name, form.name);
    Ok(done(format, json!({ "user": form.name, "role": role })))
}

#[derive(Deserialize)]
pub struct SetRole {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form: SetRole = body::write(&user, Role::Admin, &headers, &body)?;
    let role = parse_role(&form.role)?;
    if name == user.name && role != Role::Admin {
        return Err(WebError::BadRequest(
            "you cannot take the admin role from yourself; ask another admin".into(),
        ));
    }
    state.catalog.set_user_role(&name, role).await?;
    Ok(done(format, json!({ "user": name, "role": role })))
}

pub async fn remove(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let _: serde::de::IgnoredAny = body::write(&user, Role::Admin, &headers, &body)?;
    if name == user.name {
        return Err(WebError::BadRequest("you cannot remove yourself".into()));
    }
    state.catalog.remove_user(&name).await?;
    Ok(done(format, json!({ "removed": name })))
}

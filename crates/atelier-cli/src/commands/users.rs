//! `atelier users`: who may log in to the web app, with which role.

use std::io::{BufRead, IsTerminal, Write};

use atelier_catalog::{Catalog, Role};
use serde_json::json;

use crate::args::{UsersAction, UsersArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &UsersArgs, json: bool) -> CliResult {
    match &args.action {
        UsersAction::Add { name, role } => {
            let role = parse_role(role)?;
            let password = read_password(name)?;
            let hash = atelier_web::hash_password(&password)
                .map_err(|e| CliError::bad_input(e.to_string()))?;
            catalog.add_user(name, role, &hash).await?;
            if json {
                print_json(&json!({"user": name, "role": role}))?;
            } else {
                println!("added {name} as {role}");
            }
        }
        UsersAction::Password { name } => {
            let password = read_password(name)?;
            let hash = atelier_web::hash_password(&password)
                .map_err(|e| CliError::bad_input(e.to_string()))?;
            catalog.set_user_password(name, &hash).await?;
            if json {
                print_json(&json!({"user": name, "password_changed": true}))?;
            } else {
                println!("changed the password of {name}; their sessions were closed");
            }
        }
        UsersAction::Role { name, role } => {
            let role = parse_role(role)?;
            catalog.set_user_role(name, role).await?;
            if json {
                print_json(&json!({"user": name, "role": role}))?;
            } else {
                println!("{name} is now {role}");
            }
        }
        UsersAction::Remove { name } => {
            catalog.remove_user(name).await?;
            if json {
                print_json(&json!({"removed": name}))?;
            } else {
                println!("removed {name}");
            }
        }
        UsersAction::List => {
            let users = catalog.users().await?;
            if json {
                print_json(&json!({"users": users}))?;
            } else if users.is_empty() {
                println!("no users; add one with `atelier users add NAME --role admin`");
            } else {
                for user in users {
                    println!("{:<24} {}", user.name, user.role);
                }
            }
        }
    }
    Ok(())
}

fn parse_role(role: &str) -> CliResult<Role> {
    Role::parse(role).ok_or_else(|| {
        CliError::bad_input(format!("--role {role}: choose viewer, reviewer or admin"))
    })
}

/// Asks on the terminal (without echo), or reads the first line of standard input when it is
/// not a terminal (`echo "$PASSWORD" | atelier users add ...`).
fn read_password(name: &str) -> CliResult<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            return Err(CliError::bad_input("the two passwords differ; try again"));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        std::io::stdout().flush()?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < 8 {
        return Err(CliError::bad_input(
            "a password needs at least 8 characters",
        ));
    }
    Ok(password)
}

//! Group lists as Dex's connectors treat them: an operator's list of required groups that is
//! also the list of what may be emitted (Dex's `pkg/groups.Filter`).

/// The groups of `given` that are in `required`, in `given`'s order (repeats dropped). Empty
/// when the user is in none of them: a connector then refuses the login.
pub fn filter(given: &[String], required: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for group in given {
        if required.contains(group) && !out.contains(group) {
            out.push(group.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_required_groups_in_the_users_order() {
        let given = list(&["ops", "devs", "admins", "devs"]);
        assert_eq!(filter(&given, &list(&["admins", "devs"])), list(&["devs", "admins"]));
        assert!(filter(&given, &list(&["nobody"])).is_empty());
        assert!(filter(&given, &[]).is_empty());
        assert_eq!(filter(&list(&["Admins"]), &list(&["admins"])), Vec::<String>::new(), "exact, case-sensitive");
    }
}

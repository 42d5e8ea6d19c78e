//! The host side of the LDAP `connection` resource: an open ldap3 connection and the origin it
//! was opened to. Its own module so the generated bindings of every contract version can name
//! it without depending on the `ldap` import's implementation.

/// An open LDAP connection held in the call's resource table.
pub struct LdapConnection {
    pub(crate) ldap: ldap3::Ldap,
    /// `scheme://host:port`, for error messages.
    pub(crate) origin: String,
}

//! The condition types and reasons of the Gateway API, as types: a status built from them
//! cannot carry a misspelt name. [`Condition`](super::Condition) keeps plain strings, since
//! what is read back from an API server may hold any reason.

use std::fmt;

macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The name as the spec spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// The condition types this project writes.
    ///
    /// ```
    /// use gateway_core::model::ConditionType;
    /// assert_eq!(ConditionType::ResolvedRefs.as_str(), "ResolvedRefs");
    /// ```
    ConditionType {
        /// GatewayClass, Gateway, ListenerSet, listener, Route parent, BackendTLSPolicy ancestor.
        Accepted,
        /// Gateway, ListenerSet, listener.
        Programmed,
        /// Gateway, listener, Route parent, BackendTLSPolicy ancestor.
        ResolvedRefs,
        /// Listener.
        Conflicted,
        /// Route parent: some rules were dropped.
        PartiallyInvalid,
        /// Gateway: client certificate validation allows insecure fallback.
        InsecureFrontendValidationMode,
        /// Listener: TLS configuration overlapping another listener's.
        OverlappingTLSConfig,
    }
}

names! {
    /// The condition reasons of the Gateway API (v1.6), for every object kind.
    ///
    /// ```
    /// use gateway_core::model::{Condition, ConditionType, Reason};
    /// let c = Condition::new(ConditionType::Programmed, false, Reason::AddressNotUsable, "", Some(2));
    /// assert_eq!((c.type_.as_str(), c.reason.as_str()), ("Programmed", "AddressNotUsable"));
    /// assert!(c.is(ConditionType::Programmed));
    /// ```
    Reason {
        /// Accepted=True.
        Accepted,
        /// Programmed=True.
        Programmed,
        /// ResolvedRefs=True.
        ResolvedRefs,
        /// Conflicted=False.
        NoConflicts,
        /// Not reconciled yet.
        Pending,
        /// Invalid as a whole.
        Invalid,
        /// GatewayClass or Gateway parameters not supported.
        InvalidParameters,
        /// GatewayClass not supported.
        Unsupported,
        /// Gateway address of an unsupported type.
        UnsupportedAddress,
        /// Gateway or ListenerSet with invalid listeners.
        ListenersNotValid,
        /// Gateway without the resources to be served.
        NoResources,
        /// Gateway waiting for an address.
        AddressNotAssigned,
        /// Gateway requested address that cannot be used.
        AddressNotUsable,
        /// A cross-namespace reference without a ReferenceGrant.
        RefNotPermitted,
        /// Gateway backend client certificate reference invalid.
        InvalidClientCertificateRef,
        /// Gateway TLS configuration changed (insecure frontend validation).
        ConfigurationChanged,
        /// Listener port not available.
        PortUnavailable,
        /// Listener protocol (or route backend protocol) not supported.
        UnsupportedProtocol,
        /// Listener without a valid CA certificate for client validation.
        NoValidCACertificate,
        /// A value this implementation does not support.
        UnsupportedValue,
        /// Listener conflicting by hostname.
        HostnameConflict,
        /// Listener conflicting by protocol.
        ProtocolConflict,
        /// ListenerSet listener conflicting with another.
        ListenerConflict,
        /// ListenerSet with more listeners than supported.
        TooManyListeners,
        /// Listener certificate reference invalid.
        InvalidCertificateRef,
        /// Listener route kinds not supported.
        InvalidRouteKinds,
        /// Listener or BackendTLSPolicy CA reference invalid.
        InvalidCACertificateRef,
        /// Listener CA reference of an unsupported kind.
        InvalidCACertificateKind,
        /// ListenerSet not allowed by its parent Gateway.
        NotAllowed,
        /// ListenerSet whose parent Gateway is not accepted.
        ParentNotAccepted,
        /// ListenerSet whose parent Gateway is not programmed.
        ParentNotProgrammed,
        /// Route not allowed by any listener of the parent.
        NotAllowedByListeners,
        /// Route hostnames intersect no listener hostname.
        NoMatchingListenerHostname,
        /// Route parent (or its section or port) not found or not accepted.
        NoMatchingParent,
        /// Route filters that cannot be combined.
        IncompatibleFilters,
        /// Route backend or BackendTLSPolicy reference of an unsupported kind.
        InvalidKind,
        /// Route backend not found.
        BackendNotFound,
        /// BackendTLSPolicy conflicting with another.
        Conflicted,
        /// BackendTLSPolicy target not found.
        TargetNotFound,
    }
}

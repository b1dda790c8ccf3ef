"""Who is calling: a role, for intake and subscriber roles the agency or subscriber it acts for, and the credential.

`actor` is what the audit log records as who acted: the grant (role and scope) and the credential that used it, the
API key id (`admin:k_ab12cd34ef56`, `intake:health:k_...`) or the identity provider's subject
(`ig_auditor:oidc:<sub>`). A role alone cannot answer "who did this"; a key id or a subject can, through the key
list or the identity provider. The CLI acts as the operating-system account that ran it (`cli:uid1000`).
"""

# Moved below the service layer (issue 20): broker/access/principal.py. Re-exported for existing callers.
from broker.access.principal import ROLES, SCOPED, Principal, actor_safe_subject, cli_actor

__all__ = ["ROLES", "SCOPED", "Principal", "actor_safe_subject", "cli_actor"]

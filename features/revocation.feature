Feature: Revocation
  Logout ends the session and its token everywhere: the gateway itself
  refuses them, whoever presents them. The threat is a stolen cookie or token
  replayed after its owner logged out, so these scenarios replay copies of the
  old values (the owner's client, like a browser, drops the cookie logout
  clears), on every gateway, by cookie and by bearer. A 401 counts only when
  the gateway gave it: services behind a gateway need not check revocations.

  Scenario Outline: Logout by <way> revokes both the session and the token
    Given a running stack
    And a logged-in user "lou"
    And "lou" gets 200 from /users/me by session and by bearer on every gateway
    When "lou" logs out by <way>
    Then every gateway refuses the old session of "lou" at once
    And every gateway refuses the old token of "lou" at once

    Examples:
      | way     |
      | session |
      | bearer  |

  @needs:fresh-stack
  Scenario Outline: Logout by <way> is seen by every gateway before any cache could expire
    Given a fresh stack with 1 user instance and 2 gateways
    And a logged-in user "gus"
    And "gus" gets 200 from /users/me by session and by bearer on every gateway
    When "gus" logs out by <way>
    Then every gateway refuses the old session of "gus" at once
    And every gateway refuses the old token of "gus" at once

    Examples:
      | way     |
      | session |
      | bearer  |

  @needs:fresh-stack
  Scenario: A gateway that starts after a logout refuses the revoked session and token
    Given a fresh stack with 1 user instance
    And a logged-in user "rex"
    And a logged-in user "ida"
    And "rex" gets 200 from /users/me by session and by bearer on every gateway
    When "rex" logs out by session
    And gateway 1 restarts
    And a new gateway starts
    Then every gateway refuses the old session of "rex" at once
    And every gateway refuses the old token of "rex" at once
    But "ida" gets 200 from /users/me by session and by bearer on every gateway

  # Catches reference-services/auth/src/routes.rs `revoke`:
  # `if revoked.session_ended || revoked.token_denylisted` (publish the
  # revocation) with `||` replaced by `&&`. With the session already gone only
  # the token is newly revoked, and a gateway that cached it must still hear.
  @needs:redis
  Scenario: Logging out by token whose session is already gone still reaches every gateway
    Given a running stack
    And a logged-in user "ned"
    And "ned" gets 200 from /users/me by session and by bearer on every gateway
    When the session of "ned" is deleted in Redis, with no revocation announced
    And "ned" logs out by bearer
    Then every gateway refuses the old token of "ned" at once

  # Catches reference-services/auth/src/routes.rs `logout`:
  # `session_claims.as_ref().is_none_or(|sc| sc.jti != c.jti)` with `!=`
  # replaced by `==` (a bearer token of another session than the cookie's is
  # then left valid by a logout that presented both).
  Scenario: Logout with the cookie of one session and the token of another ends both
    Given a running stack
    And a logged-in user "kit"
    When "kit" logs in again
    And "kit" logs out with the new session cookie and the token of the first login
    Then every gateway refuses the old session of "kit" at once
    And every gateway refuses the old token of "kit" at once

  # Catches reference-services/auth/src/routes.rs `revoke`:
  # `if sid.is_none() && claims.is_none()` (nothing to revoke) with `&&`
  # replaced by `||`. A token may outlive its session when GANTRY_TOKEN_TTL is
  # longer than GANTRY_SESSION_TTL; logging out by it must still revoke it.
  @needs:fresh-stack
  Scenario: Logging out by a token that outlived its session still revokes it
    Given a fresh stack where GANTRY_SESSION_TTL is 2s and GANTRY_TOKEN_TTL is 1m
    And a logged-in user "tim"
    When the session of "tim" ends by its TTL while its token lives on
    And "tim" logs out by bearer
    Then every gateway refuses the old token of "tim" at once

Feature: Mutants
  Behaviour a mutation run (ci/mutants.sh, README "Mutation testing") found
  unchecked: no other scenario failed when the code deciding it was mutated.
  Each scenario names the mutant it catches.

  # Catches reference-services/auth/src/routes.rs `revoke`:
  # `revoked.session_ended = deleted > 0` with `>` replaced by `>=` (every
  # refresh then believes it ended the session itself).
  Scenario: Of refreshes racing with one session cookie, exactly one gets a new session
    Given a running stack
    And a logged-in user "rex"
    When 16 refreshes of the session of "rex" race each other
    Then exactly one of the refreshes gets a new session and the others get 401

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

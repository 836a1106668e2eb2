Feature: Abuse
  A session ends when its owner logs out, however they do it, and no chain of
  refreshes keeps it alive past its maximum age. Guessing passwords is counted
  before any hash is computed, per account and client address, so a burst of
  guesses gets a handful of answers and a guesser elsewhere cannot keep the
  owner out. A flood of logins is queued up to a bound and refused beyond it.

  Scenario: Logging out by token also ends the session that holds it
    Given a running stack
    And a logged-in user "ann"
    When "ann" logs out by bearer
    Then the old session of "ann" gets 401 from GET /users/me
    And the old session of "ann" gets 401 from POST /auth/refresh

  @needs:fresh-stack
  Scenario: Refreshing rotates the session, ends the old one and its token on every gateway, and never passes the maximum age
    Given a fresh stack with 2 gateways where GANTRY_SESSION_MAX_AGE is 10s
    And a logged-in user "dee"
    And "dee" gets 200 from /users/me by session and by bearer on every gateway
    When "dee" refreshes the session
    Then every gateway refuses the old session of "dee" at once
    And every gateway refuses the old token of "dee" at once
    And "dee" gets 200 from /users/me by session and by bearer on every gateway
    And the old session of "dee" gets 401 from POST /auth/refresh
    And the old token of "dee" gets 401 from /users/me
    And a refresh of "dee" ends the session and its token within 10 seconds of the login
    And refreshing the session of "dee" again and again is refused within 30 seconds

  @needs:fresh-stack
  Scenario: A burst of wrong passwords gets a handful of answers, and the owner still gets in
    Given a fresh stack where GANTRY_LOGIN_FIRST_LOCKOUT is 10m
    And a registered user "cat"
    When 60 wrong passwords for "cat" arrive at once from 127.0.0.2, each claiming another X-Forwarded-For
    Then 5 of them are answered 401 and the other 55 are answered 429 with Retry-After of at least 590 seconds
    And the right password for "cat" from 127.0.0.2 is answered 429
    But the right password for "cat" from 127.0.0.1 is answered 200

  Scenario: A wrong password and an unknown user get the very same answer
    Given a running stack
    And a registered user "ada"
    Then a wrong password for "ada" and an unknown user get the very same answer

  @needs:fresh-stack
  Scenario: GANTRY_LOGIN_MAX_FAILURES sets how many wrong passwords are answered; then even the right one waits, told how long
    Given a fresh stack where GANTRY_LOGIN_MAX_FAILURES is 3 and GANTRY_LOGIN_FIRST_LOCKOUT is 10m
    And a registered user "tom"
    When 4 wrong passwords for "tom" arrive at once from 127.0.0.1, each claiming another X-Forwarded-For
    Then 3 of them are answered 401 and the other 1 are answered 429 with Retry-After of at least 590 seconds
    And the right password for "tom" from 127.0.0.1 is answered 429
    And the header "Retry-After" is a number from 1 to 600
    And the JSON at "/error" is "too_many_attempts"

  Scenario: A refresh without a session cookie is refused with a reason
    Given a running stack
    When I POST /auth/refresh
    Then the answer is 401 with a JSON error

  @needs:fresh-stack
  Scenario: A flood of logins is refused with 503 and Retry-After beyond the hashing queue, never 500
    Given a fresh stack where GANTRY_HASH_CONCURRENCY is 1 and GANTRY_HASH_QUEUE is 2
    When 150 logins of unknown users arrive at once
    Then every answer is 401 or 503, and the 503s say "busy" with Retry-After
    And at least one answer is 503

  # Catches reference-services/auth/src/routes.rs `revoke`:
  # `revoked.session_ended = deleted > 0` with `>` replaced by `>=` (every
  # refresh then believes it ended the session itself).
  Scenario: Of refreshes racing with one session cookie, exactly one gets a new session
    Given a running stack
    And a logged-in user "rex"
    When 16 refreshes of the session of "rex" race each other
    Then exactly one of the refreshes gets a new session and the others get 401

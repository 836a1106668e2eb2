Feature: Sessions
  A SESSION cookie is looked up in Redis and cached briefly in the gateway: at
  most GANTRY_SESSION_CACHE_TTL (5 s), so a session that ends without a
  revocation (it expired, an operator deleted it) stops working within that
  bound. The cookie is HttpOnly, SameSite=Lax, Path=/, lives as long as the
  session and is Secure unless configured off; logout clears it. (Revocation
  by logout: features/revocation.feature.)

  @needs:redis @serial
  Scenario: The gateway does not ask Redis for every request
    Given a running stack
    And a logged-in user "sam"
    When "sam" calls /users/me 200 times by session
    Then every answer is 200
    And Redis saw at most 5 session lookups for them

  @needs:fresh-stack
  Scenario: An expired session is 401
    Given a fresh stack with 1 user instance and sessions that last 2 seconds
    And a logged-in user "eva"
    When the session of "eva" expires in Redis
    Then GET /users/me as "eva" by session answers 401

  @needs:redis
  Scenario: A session deleted in Redis without a revocation is served from the cache for at most its bound
    Given a running stack
    And a logged-in user "ivy"
    And GET /users/me as "ivy" by session answers 200
    When the session of "ivy" is deleted in Redis, with no revocation announced
    Then "ivy" still gets 200 from /users/me by session, from the gateway's session cache
    And "ivy" gets 401 from /users/me by session within the session cache's bound

  Scenario: The session cookie is kept from scripts and other sites, and logout clears it
    Given a running stack
    And a logged-in user "cora"
    Then the session cookie "cora" was last given is set with HttpOnly, SameSite=Lax, Path=/
    When "cora" logs out by session
    Then the session cookie "cora" was last given is cleared with HttpOnly, SameSite=Lax, Path=/, Max-Age=0

  @needs:fresh-stack
  Scenario: A stack that speaks plain HTTP, as gantry up's does, does not mark its cookie Secure
    Given a fresh stack with 1 user instance
    And a logged-in user "pia"
    Then the session cookie "pia" was last given is set with HttpOnly, SameSite=Lax, Path=/, no Secure

  @needs:fresh-stack
  Scenario Outline: The session cookie lives as long as the session, and is Secure unless configured off
    Given a fresh stack where GANTRY_SESSION_TTL is 90s and GANTRY_SESSION_MAX_AGE is <max age> and GANTRY_COOKIE_SECURE is <secure>
    And a logged-in user "cole"
    Then the session cookie "cole" was last given is set with HttpOnly, SameSite=Lax, Path=/, Max-Age=<cookie max age>, <secure attribute>
    When "cole" refreshes the session
    Then the session cookie "cole" was last given is set with HttpOnly, SameSite=Lax, Path=/, <secure attribute>
    When "cole" logs out by session
    Then the session cookie "cole" was last given is cleared with HttpOnly, SameSite=Lax, Path=/, Max-Age=0, <secure attribute>

    # The session's TTL, or what is left of its maximum age when that is less.
    Examples:
      | max age | secure | cookie max age | secure attribute |
      | 12h     | true   | 90             | Secure           |
      | 60s     | false  | 59..60         | no Secure        |

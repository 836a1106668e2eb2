Feature: Identity at the gateway
  The gateway verifies bearer tokens itself and turns a SESSION cookie into a
  token; anything it cannot verify is 401 with WWW-Authenticate: Bearer.

  Background:
    Given a running stack
    And a logged-in user "alice"

  Scenario: Login gives a token and a session, and both reach /users/me
    Then GET /users/me as "alice" by session answers 200
    And GET /users/me as "alice" by bearer answers 200
    And the answer names "alice" and comes from a user instance

  Scenario: A profile is exactly the account, by cookie, by token and at its id; an unknown id is 404
    When I GET /users/me as "alice" by session
    Then the answer is exactly the profile of "alice"
    And the header "X-Request-Id" exists
    When I GET /users/me as "alice" by bearer
    Then the answer is exactly the profile of "alice"
    When "alice" reads their own profile by id
    Then the answer is exactly the profile of "alice"
    When I GET /users/u_nope as "alice" by bearer
    Then the answer is 404 with a JSON error

  Scenario: Login answers with a Bearer token and how long it lives
    When "alice" logs in
    Then the status is 200
    And the JSON at "/token_type" is "Bearer"
    And the JSON at "/access_token" exists
    And the JSON at "/expires_in" is a number from 1 to 86400

  Scenario: A taken username and a weak password are refused with a reason
    When "alice" registers again with another password
    Then the answer is 409 with a JSON error
    And the JSON at "/error" is "username_taken"
    When I POST /auth/register with JSON {"username": "bob", "password": "short"}
    Then the answer is 400 with a JSON error
    And the JSON at "/error" is "weak_password"

  Scenario: The signing keys are published as EdDSA keys with a key id
    When I GET /auth/.well-known/jwks.json
    Then the status is 200
    And the JSON at "/keys/0/alg" is "EdDSA"
    And the JSON at "/keys/0/kid" exists

  Scenario Outline: A token that anyone could forge is refused
    When "alice" calls /users/me with a token that is <forgery>
    Then the answer is 401 with a Bearer challenge

    Examples:
      | forgery                             |
      | signed with alg none                |
      | tampered after signing              |
      | signed with an unknown key          |
      | HS256-signed with the public key    |
      | garbage                             |
      | empty                               |
      | 10 KB long                          |

  Scenario Outline: A SESSION cookie that names no session is refused: <cookie>
    When I GET /users/me with header "Cookie: <cookie>"
    Then the answer is 401 with a Bearer challenge

    Examples:
      | cookie                                              |
      | SESSION=                                            |
      | SESSION=../../etc                                   |
      | SESSION=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA |
      | SESSION=%00%01                                      |

  @needs:signing-key
  Scenario Outline: A token signed with the real key but invalid claims is refused
    When "alice" calls /users/me with a token signed by the stack's key that is <claims>
    Then the answer is 401 with a Bearer challenge

    Examples:
      | claims                  |
      | expired                 |
      | not yet valid           |
      | from the wrong issuer   |
      | for the wrong audience  |
      | missing its jti         |
      | missing its exp         |
      | missing its iat         |
      | missing its iss         |
      | missing its aud         |
      | missing its sub         |
      | issued in the future    |
      | a service token         |
      | untyped                 |

  @needs:signing-key
  Scenario: A token signed by the stack's key with valid claims is accepted
    When "alice" calls /users/me with a token signed by the stack's key that is valid
    Then the status is 200

  @needs:fresh-stack
  Scenario: A user instance checks tokens itself: revoked ones and the wrong kind get nothing
    Given a fresh stack with 1 user instance
    And a logged-in user "dora"
    Then user instance 1, called directly, answers 200 to the token of "dora"
    And user instance 1, called directly, refuses the access token of "dora" on its internal route
    When "dora" logs out by session
    Then user instance 1, called directly, answers 401 to the token of "dora"

  @needs:fresh-stack
  Scenario: Key rotation keeps old tokens valid until they expire
    Given a fresh stack with 1 user instance
    And a logged-in user "rotor"
    When auth's signing key is rotated
    Then GET /users/me as "rotor" by bearer answers 200
    When "rotor" logs in again
    Then GET /users/me as "rotor" by bearer answers 200
    And the new token is signed with a different key than the old one

  # The shared steps alone (gantry_harness::steps), as a team would write
  # them for its own services: register, log in, call as the user.
  @needs:fresh-stack
  Scenario: A user of the shared steps reads their profile by token and by cookie until they log out
    Given a fresh stack with 1 user instance
    And a user "grace" with password "grace-correct-horse" is registered
    And "grace" is logged in
    When I GET /users/me as "grace"
    Then the status is 200
    And the JSON at "/username" is "grace"
    And the JSON at "/password" is absent
    And the header "X-Instance-Id" is "user-1"
    And Redis has a key matching "session:*"
    Given requests as "grace" carry the session cookie
    When I GET /users/me as "grace"
    Then the status is 200
    When I POST /auth/logout as "grace"
    Then the status is 204
    And GET /users/me as "grace" by bearer answers 401 within 5 seconds
    And the header "WWW-Authenticate" is "Bearer"
    And Redis has no key matching "session:*"

  @needs:fresh-stack
  Scenario: With a shared secret (HS256) tokens are checked against it, and no key is published
    Given a fresh stack where GANTRY_JWT_ALG is HS256 and GANTRY_JWT_SECRET is a-shared-secret-of-at-least-32-bytes!
    And a logged-in user "hal"
    Then GET /users/me as "hal" by bearer answers 200
    And GET /users/me as "hal" by session answers 200
    When I GET /auth/.well-known/jwks.json
    Then the JSON at "/keys" is []
    When "hal" calls /users/me with a token minted with the secret "a-shared-secret-of-at-least-32-bytes!"
    Then the status is 200
    When "hal" calls /users/me with a token minted with the secret "another-secret-of-at-least-32-bytes"
    Then the answer is 401 with a Bearer challenge

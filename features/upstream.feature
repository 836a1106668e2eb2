Feature: What reaches an upstream
  An upstream trusts the gateway for who is calling: it sees only the identity
  the gateway verified, never one a client claimed, and none of the headers
  meant for one hop only. The rest of the request (method, path, query, body)
  arrives as the client sent it. An echo upstream, registered as the only
  instance of the user service, reports exactly what it received.

  @needs:fresh-stack
  Scenario: Claimed identities and hop-by-hop headers stop at the gateway; the session's token, X-Forwarded-For and X-Request-Id arrive
    Given a fresh stack with 1 user instance
    And a logged-in user "ursula"
    And echo upstream "echo-1" is the only instance of "user"
    When "ursula" calls /users/me by session with these headers:
      | X-User-Id              | u_admin                  |
      | X-Forwarded-User       | admin                    |
      | X-Consumer-Username    | admin                    |
      | X-Authenticated-Userid | admin                    |
      | X-Remote-User          | admin                    |
      | Remote-User            | admin                    |
      | Connection             | keep-alive, X-Hop-Secret |
      | X-Hop-Secret           | for-the-next-hop-only    |
      | Keep-Alive             | timeout=5                |
      | Proxy-Authorization    | Basic YWRtaW46YWRtaW4=   |
      | Proxy-Connection       | keep-alive               |
      | TE                     | trailers                 |
      | Trailer                | X-Checksum               |
      | X-Forwarded-For        | 203.0.113.7              |
      | X-Probe                | passed-on                |
    Then the answer came from echo upstream "echo-1" and is what it received
    And echo upstream "echo-1" received "X-Probe: passed-on"
    And echo upstream "echo-1" received none of the headers X-User-Id, X-Forwarded-User, X-Consumer-Username, X-Authenticated-Userid, X-Remote-User, Remote-User
    And echo upstream "echo-1" received none of the headers Connection, X-Hop-Secret, Keep-Alive, Proxy-Authorization, Proxy-Connection, TE, Trailer
    And echo upstream "echo-1" received "Authorization: Bearer" with the JWT of "ursula"'s session in Redis
    And echo upstream "echo-1" received X-Forwarded-For with only the client's address, not the "203.0.113.7" it claimed
    And echo upstream "echo-1" received the X-Request-Id the gateway answered with

  @needs:fresh-stack
  Scenario: Method, path, query and body reach an upstream unchanged
    Given a fresh stack with 1 user instance
    And a logged-in user "umberto"
    And echo upstream "echo-1" is the only instance of "user"
    When "umberto" sends these requests by bearer:
      | method | path                               | body                                  |
      | GET    | /users/me?fields=id,username&x=%20 |                                       |
      | POST   | /users/echo/notes?draft=true       | {"note":"grüße, ✓","n":[1,2,3]}       |
      | PUT    | /users/echo/notes/7                | {"note":"replaced"}                   |
      | PATCH  | /users/echo/notes/7?if-match=abc   | {"op":"add","path":"/tags","v":["x"]} |
      | DELETE | /users/echo/notes/7                |                                       |
    Then each reached echo upstream "echo-1" with its method, path, query and body unchanged

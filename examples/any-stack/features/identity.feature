Feature: Identity through the gateway
  Gantry's auth service issues the tokens and the gateway verifies them. The
  greeter (Python) trusts the identity headers the gateway sets; the notes
  service (Rust) verifies every token again itself.

  Scenario: The greeter greets the user the gateway verified
    Given a new user "alice" is logged in
    When I GET /greet/hello as "alice"
    Then the status is 200
    And the JSON at "/hello" is "{alice.username}"
    And the header "X-Served-By" exists

  Scenario: Identity headers a client sends never reach the greeter
    Given a new user "mallory" is logged in
    When I GET /greet/hello as "mallory" with headers:
      | X-User-Id  | admin |
      | X-Username | admin |
    Then the status is 200
    And the JSON at "/hello" is "{mallory.username}"
    And the body does not contain "admin"
    When I GET /greet/hello with header "X-User-Id: admin"
    Then the status is 401
    And the header "X-Served-By" is absent

  Scenario: The notes service accepts the token and reads whom it names
    Given a new user "nora" is logged in
    When I POST /notes as "nora" with JSON {"text": "buy milk"}
    Then the status is 201
    And the JSON at "/text" is "buy milk"
    When I GET /notes as "nora"
    Then the status is 200
    And the JSON at "/username" is "{nora.username}"

  Scenario: Without a token the gateway refuses before a service sees the request
    When I GET /notes
    Then the status is 401
    And the header "WWW-Authenticate" exists
    And the header "X-Served-By" is absent
    When I GET /greet/hello
    Then the status is 401
    And the header "X-Served-By" is absent

  # Made once, with keys the stack has never seen: "none" is unsigned, the
  # HS256 one tries algorithm confusion, the EdDSA ones are signed by a
  # stranger (the last one expired in 2001).
  Scenario Outline: A token the stack did not issue is refused: <what>
    When I GET <path> with header "Authorization: Bearer <token>"
    Then the status is 401
    And the header "X-Served-By" is absent

    Examples:
      | what              | path         | token |
      | unsigned          | /notes       | eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiIsInVzZXJuYW1lIjoiYWRtaW4iLCJpc3MiOiJnYW50cnktYXV0aCIsImF1ZCI6ImdhbnRyeSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiJmb3JnZWQtMSJ9. |
      | HS256             | /greet/hello | eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6InN0cmFuZ2VyIn0.eyJzdWIiOiJhZG1pbiIsInVzZXJuYW1lIjoiYWRtaW4iLCJpc3MiOiJnYW50cnktYXV0aCIsImF1ZCI6ImdhbnRyeSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiJmb3JnZWQtMSJ9.OgNhm_SHFYGil6sA5dPxS42AMM0pLAAnRAeXOwKilXs |
      | a stranger's key  | /notes       | eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6InN0cmFuZ2VyIn0.eyJzdWIiOiJhZG1pbiIsInVzZXJuYW1lIjoiYWRtaW4iLCJpc3MiOiJnYW50cnktYXV0aCIsImF1ZCI6ImdhbnRyeSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiJmb3JnZWQtMSJ9.fbDf-b88qfWePiCH9OvV_UtgVX793K_6VqqA_ZJw81cctmrgECZy4MP5TFybyhT0ZnWGdPW8WsirdPq8l2RNCA |
      | expired           | /greet/hello | eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6InN0cmFuZ2VyIn0.eyJzdWIiOiJhZG1pbiIsInVzZXJuYW1lIjoiYWRtaW4iLCJpc3MiOiJnYW50cnktYXV0aCIsImF1ZCI6ImdhbnRyeSIsImlhdCI6OTc4MzA3MjAwLCJleHAiOjk3ODMxMDgwMCwianRpIjoiZXhwaXJlZC0xIn0.hujtOZxwCSQTY6HID4V1jjIix8-jQGnow8NyefDkf7Tx-3sWJkMr2jV3U7fPaz-VYzeTZnw0Yg4hL9v61Z8sCg |

  Scenario: Malformed JSON to the notes service is a 400 with a JSON error
    Given a new user "bart" is logged in
    When I POST /notes as "bart" with body:
      """
      {"text": "unterminated
      """
    Then the status is 400
    And the JSON at "/error" is "bad_json"

  # {url:notes-2} is the second notes instance's own address: the request
  # goes past the gateway, as anything else on its network could send it.
  @needs:instances
  Scenario: Called directly, past the gateway, notes still refuses a request without a valid token
    Given a new user "nell" is logged in
    When I GET {url:notes-2}/notes
    Then the status is 401
    When I GET {url:notes-2}/notes with header "Authorization: Bearer not-a-token"
    Then the status is 401
    When I GET {url:notes-2}/notes as "nell"
    Then the status is 200
    And the header "X-Served-By" is "notes-2"

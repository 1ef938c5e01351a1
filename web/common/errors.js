// Turns the engine's refusals into words a person understands. The engine's codes are
// stable (API.md, docs/API-NOTES.md); its messages are for developers and name ids.

const WORDS = {
  // Offers.
  offer_expired: "This offer has expired: the conversation went back to its queue.",
  not_offered_to_you: "This conversation is no longer offered to you (it expired or went to someone else).",
  // Presence.
  agent_busy: "You cannot log out while you hold conversations. End them and submit their wrap-ups first.",
  state_not_settable: "That state cannot be chosen; pick Available or an idle code.",
  unknown_idle_code: "That idle code is not configured any more. Reload the page for the current list.",
  // Conversations.
  not_owner: "Only the agent who owns this conversation can do that.",
  not_guest: "Only the conference guest can exit the conference.",
  not_in_conversation: "You are no longer in this conversation.",
  conversation_ended: "This conversation has already ended.",
  outside_messaging_window: "The customer wrote more than 24 hours ago: Messenger no longer accepts an answer in this conversation.",
  unknown_page: "No entry point has this Facebook Page.",
  not_queued: "This conversation is no longer waiting, so its priority cannot change.",
  page_in_use: "This Facebook Page already belongs to another entry point.",
  thread_of_another_app: "Another app (a bot) owns this Messenger conversation.",
  unknown_tenant: "There is no such contact centre.",
  tenant_not_empty: "The contact centre still has open conversations.",
  tenant_limit: "Your contact centre has reached a limit its operator set; ask them to raise it.",
  note_too_long: "The note is too long for the offer: keep it to 1,000 characters.",
  unknown_canned_response: "That canned response no longer exists.",
  unknown_webhook: "That webhook subscription no longer exists.",
  private_address: "That webhook address is on a loopback or private network, which the engine does not send to.",
  attachment_too_large: "The file is too large to send.",
  missing_file: "Choose a file to send.",
  attachment_storage_full: "The server has no room for more files; tell your administrator.",
  invalid_state: "That does not fit the conversation's state right now.",
  agent_unavailable: "That agent is not available with a free slot right now. Refresh the list and choose another.",
  conference_in_progress: "This conversation already has a conference guest or a pending conference request.",
  no_conference: "There is no conference in this conversation.",
  no_wrapup_owed: "No wrap-up is owed for this conversation any more.",
  unknown_wrapup_reason: "That wrap-up reason is not configured any more. Refresh the list.",
  unknown_agent: "That agent does not exist.",
  unknown_queue: "That queue does not exist.",
  unknown_entry_point: "That entry point does not exist.",
  unknown_conversation: "That conversation does not exist any more.",
  unknown_supervisor: "That supervisor does not exist.",
  // Input and transport.
  invalid_input: "The engine did not accept that input.",
  invalid_json: "The page sent something the engine could not read. Reload the page.",
  payload_too_large: "That message is too long.",
  invalid_command: "The page sent a command the engine did not understand. Reload the page.",
  too_many_commands: "Too many actions at once; wait a moment and try again.",
  already_exists: "That already exists.",
  // Sign-in.
  invalid_credentials: "Wrong agent id or password.",
  wrong_password: "The current password is not right.",
  too_many_attempts: "Too many failed sign-ins for this id. Wait a minute and try again.",
  unauthorized: "Your session has ended or the token is not valid. Sign in again.",
  forbidden: "That token may not be used here: it must be an agent's token or session.",
  // The engine itself.
  store_unavailable: "The engine cannot save changes right now (storage problem). Nothing was changed; try again shortly.",
  engine_unavailable: "The engine is not answering right now. Try again shortly.",
  overloaded: "The engine is very busy and takes no new conversations for a moment. Try again in a second.",
  unhealthy: "The engine is not healthy right now. Try again shortly.",
  internal_error: "The engine hit an unexpected problem; nothing was changed. Try again, and tell your administrator if it persists.",
  not_connected: "Not connected to the engine; the page is reconnecting. Try again in a moment.",
  connection_lost: "The connection dropped before the engine answered. Check the conversation before trying again.",
  network: "The engine could not be reached. Check that it is running.",
  download_cut: "The download stopped before its end (the engine could not read everything). Try again.",
};

/** A person-readable sentence for an error `{status, code, message}`. */
export function explain(error) {
  if (!error) return "Something went wrong.";
  const words = WORDS[error.code];
  if (words) {
    if (error.code === "invalid_input" && error.message) return `${words} (${error.message})`;
    return words;
  }
  if (error.status === 503) return WORDS.engine_unavailable;
  return error.message || `The engine refused (${error.code || error.status}).`;
}

/** Why the engine changed the agent's state (a `state_changed` `reason`). */
export function stateReason(reason) {
  switch (reason) {
    case "offer_expired":
      return "You did not accept an offer before its deadline.";
    case "supervisor":
      return "A supervisor changed your state.";
    case "admin":
      return "An administrator changed your state.";
    default:
      return reason ? `Reason: ${reason}.` : "";
  }
}

/** Why a conversation ended (`ended_reason`). */
export function endedReason(reason) {
  switch (reason) {
    case "agent_ended":
      return "The conversation was ended by an agent.";
    case "customer_ended":
      return "The customer ended the conversation.";
    case "transfer_not_accepted":
      return "The transfer was not accepted in time, so the conversation was dropped.";
    case "customer_inactive":
      return "The customer did not write for too long, so the conversation was closed.";
    case "conference_ended":
      return "The host ended the conference.";
    default:
      return reason ? `The conversation ended (${reason}).` : "The conversation ended.";
  }
}

/** Why an offer disappeared (`offer_withdrawn` `reason`). */
export function withdrawnReason(reason) {
  switch (reason) {
    case "expired":
      return "expired";
    case "accepted_elsewhere":
      return "was taken by another agent";
    case "customer_left":
      return "was withdrawn: the customer left";
    case "conversation_ended":
      return "was withdrawn: the conversation ended";
    default:
      return `was withdrawn (${reason})`;
  }
}

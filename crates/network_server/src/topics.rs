//! Topics for publish/subscribe on top of broadcast: topic names interned to
//! small ids, each topic a dense member list with a position index so that
//! subscribe, unsubscribe and removing a closed client are O(1), and
//! publishing iterates a plain slice.

use std::collections::HashMap;

use crate::ClientId;

/// One topic's subscribers.
#[derive(Debug, Default)]
struct Topic {
    members: Vec<ClientId>,
    pos: HashMap<ClientId, u32>,
}

/// Every topic of one server (one event loop).
#[derive(Debug, Default)]
pub(crate) struct Topics {
    ids: HashMap<Box<str>, u32>,
    topics: Vec<Topic>,
}

impl Topics {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.topics.len() as u32;
        self.topics.push(Topic::default());
        self.ids.insert(name.into(), id);
        id
    }

    /// Adds `client` to `name`; returns the topic id, and whether it was new.
    pub(crate) fn subscribe(&mut self, name: &str, client: ClientId) -> (u32, bool) {
        let id = self.id(name);
        let t = &mut self.topics[id as usize];
        if t.pos.contains_key(&client) {
            return (id, false);
        }
        t.pos.insert(client, t.members.len() as u32);
        t.members.push(client);
        (id, true)
    }

    /// Removes `client` from topic `id`; returns whether it was a member.
    pub(crate) fn unsubscribe_id(&mut self, id: u32, client: ClientId) -> bool {
        let Some(t) = self.topics.get_mut(id as usize) else {
            return false;
        };
        let Some(i) = t.pos.remove(&client) else {
            return false;
        };
        t.members.swap_remove(i as usize);
        if let Some(&moved) = t.members.get(i as usize) {
            t.pos.insert(moved, i);
        }
        true
    }

    /// Whether `client` is in topic `id`.
    pub(crate) fn is_member(&self, id: u32, client: ClientId) -> bool {
        self.topics
            .get(id as usize)
            .is_some_and(|t| t.pos.contains_key(&client))
    }

    /// Every topic in id order (empty ones too, so that an import gives
    /// each the same id) with its members in order.
    pub(crate) fn export(&self) -> Vec<(String, Vec<ClientId>)> {
        let mut names: Vec<(&str, u32)> = self.ids.iter().map(|(n, &i)| (&**n, i)).collect();
        names.sort_by_key(|&(_, i)| i);
        names
            .into_iter()
            .map(|(n, i)| (n.to_string(), self.topics[i as usize].members.clone()))
            .collect()
    }

    /// Creates topic `name` (an import, in id order).
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        self.id(name)
    }

    /// The id of an existing topic.
    pub(crate) fn lookup(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Subscribers of topic `id` (empty for an unknown id).
    pub(crate) fn members_of(&self, id: u32) -> &[ClientId] {
        self.topics
            .get(id as usize)
            .map_or(&[], |t| t.members.as_slice())
    }

    /// Subscribers of a topic (empty for an unknown name).
    pub(crate) fn members(&self, name: &str) -> &[ClientId] {
        self.lookup(name)
            .map(|id| self.topics[id as usize].members.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_manager::Pfd;

    fn c(i: u32) -> ClientId {
        Pfd::new(i, 0)
    }

    #[test]
    fn subscribe_unsubscribe_and_members() {
        let mut t = Topics::default();
        assert_eq!(t.subscribe("news", c(1)), (0, true));
        assert_eq!(t.subscribe("news", c(1)), (0, false), "idempotent");
        t.subscribe("news", c(2));
        t.subscribe("news", c(3));
        t.subscribe("chat", c(2));
        assert_eq!(t.members("news"), [c(1), c(2), c(3)]);
        assert!(t.unsubscribe_id(0, c(1)));
        assert!(!t.unsubscribe_id(0, c(1)));
        let mut m = t.members("news").to_vec();
        m.sort();
        assert_eq!(m, [c(2), c(3)]);
        // The moved member's position was updated: removing it works.
        assert!(t.unsubscribe_id(0, c(3)));
        assert_eq!(t.members("news"), [c(2)]);
        assert_eq!(t.members("chat"), [c(2)]);
        assert!(t.members("none").is_empty());
    }
}
